/**
 * The HTTP gateway of a node: health and readiness, status, members, namespaces (create, list,
 * get, delete), module deploys, actor calls and bearer tokens. One route table serves the
 * `/v1/ns/...` names and their older `/v1/namespaces/...` aliases. Every error answers JSON
 * `{code, message}` with the status docs/errors.md lists; retryable ones carry `Retry-After`.
 * Access control (node/auth.ts) is asked before a route runs; `/healthz` and `/readyz` are open.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Capability } from '../actors/index.js'
import type { CallRequest } from './actor-host.js'
import type { CallRouter } from './router.js'
import type { Refusal } from './ws/index.js'

/** Who may use a route: anyone, an admin token, or a token for the namespace (or an admin one). */
export type Access = { kind: 'open' } | { kind: 'admin' } | { kind: 'namespace'; namespace: string }

/** Whether this node can serve: `missing` says what is not there yet when it cannot. */
export interface Readiness {
  ready: boolean
  missing: string[]
}

/** Token administration (node/auth.ts `TokenAdmin`). */
export interface GatewayTokens {
  create(body: unknown): Promise<unknown>
  list(): unknown
  remove(id: string): Promise<unknown>
}

/** What the gateway serves from; the node passes its parts in. */
export interface GatewayDeps {
  peer: string
  addrs: () => string[]
  status: () => unknown
  members: () => unknown
  namespaces: () => Array<{ name: string }>
  createNamespace: (name: string, replicationFactor: number) => Promise<unknown>
  deleteNamespace: (name: string) => Promise<unknown>
  /** Removes a node from the cluster for good (`_system` and the catalog). */
  removeNode: (peer: string) => Promise<unknown>
  readiness: () => Readiness
  router: CallRouter
  /** Bytes of a call's payload. */
  payloadBytesMax: number
  /** Bytes of a module. */
  moduleBytesMax: number
  /** Access control; none: every route is open (loopback dev mode without tokens). */
  authorize?: (req: IncomingMessage, access: Access) => Refusal | undefined
  tokens?: GatewayTokens
  /** Routes anyone may use (`GET /metrics`), tried before `extraRoutes`; true when one answered. */
  openRoutes?: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
  /** More routes (backup admin, chaos), tried before the 404 and only with admin access. */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
}

/** Bytes of a JSON admin body (namespace create, token create). */
const ADMIN_BODY_BYTES_MAX = 64 * 1024

/** One request as the handlers see it. */
interface Ctx {
  req: IncomingMessage
  res: ServerResponse
  url: URL
  deps: GatewayDeps
  /** Headers every answer of this request carries (the echoed `traceparent`). */
  headers: Record<string, string>
  send(status: number, body: unknown, headers?: Record<string, string>): void
}

interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: RegExp
  /** Who may use it, from the path's (decoded) parameters. */
  access: (params: string[]) => Access
  run: (c: Ctx, params: string[]) => Promise<void> | void
}

const NS = '/v1/(?:ns|namespaces)'
const open = (): Access => ({ kind: 'open' })
const admin = (): Access => ({ kind: 'admin' })
const ofNamespace = (p: string[]): Access => ({ kind: 'namespace', namespace: p[0]! })

/** Every route; `/v1/namespaces/...` are aliases of `/v1/ns/...` (same patterns, same handlers). */
const ROUTES: Route[] = [
  {
    method: 'GET',
    path: /^\/healthz$/,
    access: open,
    run: (c) => c.send(200, { ok: true, peer: c.deps.peer }),
  },
  { method: 'GET', path: /^\/readyz$/, access: open, run: readyz },
  { method: 'GET', path: /^\/v1\/status$/, access: admin, run: (c) => c.send(200, c.deps.status()) },
  { method: 'GET', path: /^\/v1\/members$/, access: admin, run: (c) => c.send(200, c.deps.members()) },
  {
    method: 'GET',
    path: new RegExp(`^${NS}$`),
    access: admin,
    run: (c) => c.send(200, { namespaces: c.deps.namespaces() }),
  },
  { method: 'POST', path: new RegExp(`^${NS}$`), access: admin, run: createNamespace },
  { method: 'GET', path: new RegExp(`^${NS}/([^/]+)$`), access: ofNamespace, run: getNamespace },
  {
    method: 'DELETE',
    path: new RegExp(`^${NS}/([^/]+)$`),
    access: admin,
    run: async (c, [ns]) => c.send(200, await c.deps.deleteNamespace(ns!)),
  },
  { method: 'PUT', path: new RegExp(`^${NS}/([^/]+)/module$`), access: admin, run: deploy },
  {
    method: 'POST',
    path: new RegExp(`^${NS}/([^/]+)/actors/([^/]+)/([^/]+)$`),
    access: ofNamespace,
    run: callActor,
  },
  {
    method: 'DELETE',
    path: /^\/v1\/members\/([^/]+)$/,
    access: admin,
    run: async (c, [peer]) => c.send(200, await c.deps.removeNode(peer!)),
  },
  { method: 'POST', path: /^\/v1\/tokens$/, access: admin, run: createToken },
  { method: 'GET', path: /^\/v1\/tokens$/, access: admin, run: (c) => c.send(200, tokens(c).list()) },
  {
    method: 'DELETE',
    path: /^\/v1\/tokens\/([^/]+)$/,
    access: admin,
    run: async (c, [id]) => c.send(200, await tokens(c).remove(id!)),
  },
]

export function createGateway(deps: GatewayDeps): Server {
  return createServer((req, res) => void handle(req, res, deps))
}

/** Listens on `host:port`; resolves with the base URL. */
export function listen(server: Server, hostPort: string): Promise<string> {
  const at = hostPort.lastIndexOf(':')
  const host = at > 0 ? hostPort.slice(0, at).replace(/^\[|\]$/g, '') : '127.0.0.1'
  const port = Number(at >= 0 ? hostPort.slice(at + 1) : hostPort)
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`Cannot listen on '${hostPort}': the port must be an integer from 0 to 65535`)
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      const addr = server.address() as AddressInfo
      const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
      resolve(`http://${shown}:${addr.port}`)
    })
  })
}

async function handle(req: IncomingMessage, res: ServerResponse, deps: GatewayDeps): Promise<void> {
  const c: Ctx = {
    req,
    res,
    url: new URL(req.url ?? '/', 'http://gateway'),
    deps,
    headers: {},
    send(status, body, headers = {}) {
      if (res.headersSent) {
        res.destroy()
        return
      }
      res.writeHead(status, { 'content-type': 'application/json', ...c.headers, ...headers })
      res.end(`${JSON.stringify(body)}\n`)
    },
  }
  try {
    await route(c)
  } catch (e) {
    const { status, code, headers } = httpError(e)
    c.send(status, { code, message: (e as Error).message }, headers)
  }
}

async function route(c: Ctx): Promise<void> {
  const path = c.url.pathname
  for (const r of ROUTES) {
    if (r.method !== c.req.method) continue
    const m = r.path.exec(path)
    if (m === null) continue
    const params = m.slice(1).map((p) => decodeURIComponent(p))
    if (refused(c, r.access(params))) return
    await r.run(c, params)
    return
  }
  if (ROUTES.some((r) => r.path.test(path))) {
    c.send(405, { code: 'ACTORMESH_METHOD_NOT_ALLOWED', message: `Cannot ${c.req.method} '${path}'` })
    return
  }
  if (c.deps.openRoutes && (await c.deps.openRoutes(c.req, c.res, c.url))) return
  if (c.deps.extraRoutes) {
    if (refused(c, admin())) return
    if (await c.deps.extraRoutes(c.req, c.res, c.url)) return
  }
  c.send(404, { code: 'ACTORMESH_NOT_FOUND', message: `No route '${path}'` })
}

/** Answers a refusal (401 with `www-authenticate`, 403) and returns true, or returns false. */
function refused(c: Ctx, access: Access): boolean {
  if (access.kind === 'open' || !c.deps.authorize) return false
  const denied = c.deps.authorize(c.req, access)
  if (!denied) return false
  const headers: Record<string, string> = denied.status === 401 ? { 'www-authenticate': 'Bearer' } : {}
  c.send(denied.status, { code: denied.code, message: denied.message }, headers)
  return true
}

function readyz(c: Ctx): void {
  const r = c.deps.readiness()
  if (r.ready) c.send(200, { ready: true, peer: c.deps.peer })
  else {
    c.send(
      503,
      {
        code: 'ACTORMESH_NOT_READY',
        message: `Node is not ready: ${r.missing.join('; ')}`,
        missing: r.missing,
      },
      { 'retry-after': '1' },
    )
  }
}

async function createNamespace(c: Ctx): Promise<void> {
  const body = (await readJson(c.req)) as { name?: unknown; replicationFactor?: unknown } | null
  if (typeof body?.name !== 'string')
    throw new TypeError("Cannot create a namespace: 'name' must be a string")
  const rf = body.replicationFactor === undefined ? 3 : body.replicationFactor
  if (typeof rf !== 'number')
    throw new TypeError(
      `Cannot create a namespace: 'replicationFactor' ${JSON.stringify(rf)} must be a number`,
    )
  c.send(201, await c.deps.createNamespace(body.name, rf))
}

function getNamespace(c: Ctx, [name]: string[]): void {
  const ns = c.deps.namespaces().find((n) => n.name === name)
  if (ns) c.send(200, ns)
  else c.send(404, { code: 'ACTORMESH_NAMESPACE_NOT_FOUND', message: `No namespace '${name}'` })
}

async function deploy(c: Ctx, [namespace]: string[]): Promise<void> {
  const caps = c.url.searchParams.get('capabilities')
  const sig = header(c.req, 'x-actormesh-signature')
  if (sig !== undefined && !/^[A-Za-z0-9+/]+={0,2}$/.test(sig.trim()))
    throw new TypeError(
      'Bad x-actormesh-signature: expected base64 (an Ed25519 signature, actormesh deploy --sign)',
    )
  const bytes = await readBody(c.req, c.deps.moduleBytesMax)
  c.send(
    200,
    await c.deps.router.deploy({
      namespace: namespace!,
      bytes,
      ...(caps !== null ? { capabilities: caps.split(',').filter(Boolean) as Capability[] } : {}),
      ...(sig !== undefined ? { signature: new Uint8Array(Buffer.from(sig.trim(), 'base64')) } : {}),
    }),
  )
}

async function createToken(c: Ctx): Promise<void> {
  c.send(201, await tokens(c).create(await readJson(c.req)))
}

function tokens(c: Ctx): GatewayTokens {
  if (!c.deps.tokens) throw new Error('Tokens are not served by this gateway')
  return c.deps.tokens
}

/**
 * `POST .../actors/{id}/{method}`: the body is the payload — bytes, or JSON text when the request
 * says `content-type: application/json` (checked to be JSON). A JSON request gets a JSON answer
 * when the reply is JSON. Options come as headers (or the older query parameters).
 */
async function callActor(c: Ctx, [namespace, actor, method]: string[]): Promise<void> {
  const { req, url } = c
  const incoming = header(req, 'traceparent')
  const trace = traceContext(incoming)
  if (trace) c.headers.traceparent = trace
  // The call's spans (node/tracing.ts) are children of the caller's span, not of this echo.
  const parent = trace ? traceContext(incoming, TRACEPARENT.exec(incoming!.trim())![3]) : undefined
  const json = isJsonType(header(req, 'content-type'))
  const payload = await readBody(req, c.deps.payloadBytesMax)
  if (json) parseJson(payload, 'request body')
  const consistency =
    header(req, 'x-actormesh-consistency') ?? url.searchParams.get('consistency') ?? undefined
  const readonly = flag('readonly', header(req, 'x-actormesh-readonly') ?? url.searchParams.get('readonly'))
  const key = header(req, 'idempotency-key')
  const call: CallRequest = {
    namespace: namespace!,
    actor: actor!,
    method: method!,
    payload,
    ...(readonly ? { readonly: true } : {}),
    ...(consistency !== undefined ? { consistency: consistency as 'strong' | 'stale' } : {}),
    ...(key !== undefined ? { idempotencyKey: key } : {}),
    ...(parent ? { traceparent: parent } : {}),
  }
  const out = await c.deps.router.call(call)
  const jsonReply = json && isJson(out.reply)
  c.res.writeHead(200, {
    'content-type': jsonReply ? 'application/json' : 'application/octet-stream',
    'x-actormesh-served-by': out.servedBy,
    ...(out.replayed ? { 'x-actormesh-replayed': 'true' } : {}),
    ...c.headers,
  })
  c.res.end(out.reply)
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/**
 * W3C Trace Context: validates an incoming `traceparent` and returns this hop's (same trace id and
 * flags, a new span id), or undefined when there is none. A malformed one is a `TypeError` (400).
 */
export function traceContext(value: string | undefined, spanId?: string): string | undefined {
  // The span id is made only for a call that has a trace: random bytes cost 2% of a node's CPU
  // at 256 clients when a default parameter made them for every call.
  if (value === undefined) return undefined
  const m = TRACEPARENT.exec(value.trim())
  const bad = (why: string) => new TypeError(`Bad traceparent '${value}': ${why}`)
  if (!m) throw bad('expected 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>')
  const [, version, traceId, parentId, flags, rest] = m as unknown as string[]
  if (version === 'ff') throw bad("version 'ff' is invalid")
  if (version === '00' && rest !== undefined) throw bad('version 00 has exactly four fields')
  if (/^0+$/.test(traceId!)) throw bad('the trace id is all zeros')
  if (/^0+$/.test(parentId!)) throw bad('the parent id is all zeros')
  return `00-${traceId}-${spanId ?? randomBytes(8).toString('hex')}-${flags}`
}

function flag(name: string, value: string | null | undefined): boolean {
  if (value === undefined || value === null || value === 'false') return false
  if (value === 'true') return true
  throw new TypeError(`Bad ${name} '${value}': use 'true' or 'false'`)
}

function isJsonType(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(contentType.trim())
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Parses UTF-8 JSON; a `SyntaxError` or `TypeError` (both 400) naming `what` otherwise. */
function parseJson(bytes: Uint8Array, what: string): unknown {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new TypeError(`Bad ${what}: not UTF-8`)
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new SyntaxError(`Bad ${what}: not JSON (${(e as Error).message})`)
  }
}

function isJson(bytes: Uint8Array): boolean {
  try {
    parseJson(bytes, 'reply')
    return true
  } catch {
    return false
  }
}

/** A JSON admin body; an empty body is `{}`. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const bytes = await readBody(req, ADMIN_BODY_BYTES_MAX)
  return bytes.length === 0 ? {} : parseJson(bytes, 'request body')
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** HTTP status of each non-retryable error code (retryable ones are 503). */
const STATUS: Record<string, number> = {
  ACTORMESH_CONFLICT: 409,
  ACTORMESH_BODY_TOO_LARGE: 413,
  ACTORMESH_NAMESPACE_NOT_FOUND: 404,
  ACTORMESH_TOKEN_NOT_FOUND: 404,
  ACTORMESH_NODE_NOT_FOUND: 404,
  ACTORMESH_TOKENS_MAX: 409,
  ACTORMESH_UNAUTHENTICATED: 401,
  ACTORMESH_FORBIDDEN: 403,
  ACTORMESH_NAMESPACE_NOT_DEPLOYED: 409,
  ACTORMESH_METHOD_NOT_FOUND: 404,
  ACTORMESH_MODULE_INVALID: 400,
  ACTORMESH_CAPABILITY_DENIED: 400,
  ACTORMESH_SIGNATURE_INVALID: 400,
  ACTORMESH_SIZE_LIMIT: 413,
  ACTORMESH_READONLY_VIOLATION: 409,
  ACTORMESH_INVALID_KEY: 422,
  ACTORMESH_STORAGE_KEY: 422,
  ACTORMESH_STATE_QUOTA: 507,
  ACTORMESH_STORAGE_QUOTA: 507,
  ACTORMESH_STORAGE_LIMIT: 413,
  ACTORMESH_FUEL_EXHAUSTED: 422,
  ACTORMESH_ACTOR_TRAP: 422,
  ACTORMESH_STACK_OVERFLOW: 422,
  ACTORMESH_CALL_DEADLINE: 422,
  ACTORMESH_ACTOR_FAILED: 422,
  ACTORMESH_MEMORY_LIMIT: 422,
  ACTORMESH_RPC_TIMEOUT: 504,
}

/**
 * Retryable codes: 503 with `Retry-After`. The over-a-limit ones (`ACTOR_BUSY`, `TOO_MANY_PENDING`,
 * `RPC_BUSY`) are capacity of an actor, a group or a node shared by every client — server overload
 * (RFC 9110 §15.6.4) — not a per-client quota, so they are 503 too; 429 is kept for per-client
 * limits, which the gateway does not have yet (docs/gateway.md, "Status codes").
 */
const RETRYABLE = new Set([
  'ACTORMESH_NOT_LEADER',
  'ACTORMESH_NO_LEADER',
  'ACTORMESH_NOT_APPLIED',
  'ACTORMESH_OUTCOME_UNKNOWN',
  'ACTORMESH_PENDING_DISCARDED',
  'ACTORMESH_ACTOR_BUSY',
  'ACTORMESH_PEER_UNREACHABLE',
  'ACTORMESH_RPC_BUSY',
  'ACTORMESH_RPC_CLOSED',
  'ACTORMESH_PROPOSAL_DROPPED',
  'ACTORMESH_PROPOSAL_OUTCOME_UNKNOWN',
  'ACTORMESH_TOO_MANY_PENDING',
  'ACTORMESH_READ_NOT_CONFIRMED',
])

/** Maps an error to its HTTP status and stable code (docs/errors.md). */
export function httpError(e: unknown): { status: number; code: string; headers?: Record<string, string> } {
  if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError || e instanceof URIError)
    return { status: 400, code: 'ACTORMESH_BAD_REQUEST' }
  const err = e as { code?: unknown; retryable?: unknown; details?: { retryAfterMs?: unknown } }
  const code = typeof err.code === 'string' ? err.code : 'ACTORMESH_INTERNAL'
  if (RETRYABLE.has(code) || err.retryable === true) {
    const ms = typeof err.details?.retryAfterMs === 'number' ? err.details.retryAfterMs : 1_000
    return { status: 503, code, headers: { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) } }
  }
  return { status: STATUS[code] ?? 500, code }
}

/**
 * The request body, refused over `bytesMax`. Listens for `data` itself: an async iterator over the
 * request (the obvious loop) cost ~20 µs more a call in stream bookkeeping, on every call.
 */
function readBody(req: IncomingMessage, bytesMax: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const finish = (err?: Error) => {
      req.off('data', onData).off('end', onEnd).off('error', finish).off('close', onClose)
      if (err) reject(err)
      else
        resolve(
          chunks.length === 1 ? new Uint8Array(chunks[0]!) : new Uint8Array(Buffer.concat(chunks, size)),
        )
    }
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength
      if (size > bytesMax) {
        finish(
          Object.assign(new Error(`Request body is over ${bytesMax} bytes`), {
            code: 'ACTORMESH_BODY_TOO_LARGE',
          }),
        )
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => finish()
    // The client went away before sending the whole body.
    const onClose = () => {
      if (!req.complete)
        finish(Object.assign(new Error('Request body was cut short'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }))
    }
    req.on('data', onData).on('end', onEnd).on('error', finish).on('close', onClose)
  })
}
