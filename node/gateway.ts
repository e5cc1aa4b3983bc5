/**
 * The HTTP gateway of a node: health, status, members, namespaces, module deploys and actor
 * calls. Every error answers JSON `{code, message}` with the status docs/errors.md lists;
 * retryable ones carry `Retry-After`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Capability } from '../actors/index.js'
import type { CallRequest } from './actor-host.js'
import type { CallRouter } from './router.js'

/** What the gateway serves from; the node passes its parts in. */
export interface GatewayDeps {
  peer: string
  addrs: () => string[]
  status: () => unknown
  members: () => unknown
  namespaces: () => unknown
  createNamespace: (name: string, replicationFactor: number) => Promise<unknown>
  router: CallRouter
  /** Bytes of a call's payload. */
  payloadBytesMax: number
  /** Bytes of a module. */
  moduleBytesMax: number
  /** More routes (the backup admin's), tried before the 404; true when one answered. */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
}

const ACTOR_ROUTE = /^\/v1\/namespaces\/([^/]+)\/actors\/([^/]+)\/([^/]+)$/
const MODULE_ROUTE = /^\/v1\/namespaces\/([^/]+)\/module$/

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
  const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(`${JSON.stringify(body)}\n`)
  }
  const url = new URL(req.url ?? '/', 'http://gateway')
  const path = url.pathname
  try {
    const actor = ACTOR_ROUTE.exec(path)
    if (actor) {
      if (req.method !== 'POST') return notAllowed(send, req, path)
      const [ns, id, method] = actor.slice(1).map(decodeURIComponent) as [string, string, string]
      const consistency = url.searchParams.get('consistency') ?? undefined
      const key = header(req, 'idempotency-key')
      const call: CallRequest = {
        namespace: ns,
        actor: id,
        method,
        payload: await readBody(req, deps.payloadBytesMax),
        ...(url.searchParams.get('readonly') === 'true' ? { readonly: true } : {}),
        ...(consistency !== undefined ? { consistency: consistency as 'strong' | 'stale' } : {}),
        ...(key !== undefined ? { idempotencyKey: key } : {}),
      }
      const out = await deps.router.call(call)
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'x-actormesh-served-by': out.servedBy,
        ...(out.replayed ? { 'x-actormesh-replayed': 'true' } : {}),
      })
      res.end(out.reply)
      return
    }
    const mod = MODULE_ROUTE.exec(path)
    if (mod) {
      if (req.method !== 'PUT') return notAllowed(send, req, path)
      const caps = url.searchParams.get('capabilities')
      const bytes = await readBody(req, deps.moduleBytesMax)
      send(
        200,
        await deps.router.deploy({
          namespace: decodeURIComponent(mod[1]!),
          bytes,
          ...(caps !== null ? { capabilities: caps.split(',').filter(Boolean) as Capability[] } : {}),
        }),
      )
      return
    }
    if (path === '/v1/namespaces' && req.method === 'POST') {
      const body = JSON.parse(Buffer.from(await readBody(req, 64 * 1024)).toString('utf8') || '{}') as {
        name?: unknown
        replicationFactor?: unknown
      }
      if (typeof body.name !== 'string')
        throw new TypeError("Cannot create a namespace: 'name' must be a string")
      const rf = body.replicationFactor === undefined ? 3 : body.replicationFactor
      if (typeof rf !== 'number')
        throw new TypeError("Cannot create a namespace: 'replicationFactor' must be a number")
      send(201, await deps.createNamespace(body.name, rf))
      return
    }
    if (deps.extraRoutes && (await deps.extraRoutes(req, res, url))) return
    if (req.method !== 'GET') return notAllowed(send, req, path)
    if (path === '/healthz') send(200, { ok: true, peer: deps.peer })
    else if (path === '/v1/status') send(200, deps.status())
    else if (path === '/v1/namespaces') send(200, { namespaces: deps.namespaces() })
    else if (path === '/v1/members') send(200, deps.members())
    else send(404, { code: 'ACTORMESH_NOT_FOUND', message: `No route '${path}'` })
  } catch (e) {
    const { status, code, headers } = httpError(e)
    send(status, { code, message: (e as Error).message }, headers)
  }
}

function notAllowed(send: (s: number, b: unknown) => void, req: IncomingMessage, path: string): void {
  send(405, { code: 'ACTORMESH_METHOD_NOT_ALLOWED', message: `Cannot ${req.method} '${path}'` })
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** HTTP status of each non-retryable error code of the request path (retryable ones are 503). */
const STATUS: Record<string, number> = {
  ACTORMESH_CONFLICT: 409,
  ACTORMESH_BODY_TOO_LARGE: 413,
  ACTORMESH_NAMESPACE_NOT_FOUND: 404,
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
  if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError)
    return { status: 400, code: 'ACTORMESH_BAD_REQUEST' }
  const err = e as { code?: unknown; retryable?: unknown; details?: { retryAfterMs?: unknown } }
  const code = typeof err.code === 'string' ? err.code : 'ACTORMESH_INTERNAL'
  if (RETRYABLE.has(code) || err.retryable === true) {
    const ms = typeof err.details?.retryAfterMs === 'number' ? err.details.retryAfterMs : 1_000
    return { status: 503, code, headers: { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) } }
  }
  return { status: STATUS[code] ?? 500, code }
}

/** Reads a body of at most `bytesMax` bytes. */
async function readBody(req: IncomingMessage, bytesMax: number): Promise<Uint8Array> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > bytesMax) {
      throw Object.assign(new Error(`Request body is over ${bytesMax} bytes`), {
        code: 'ACTORMESH_BODY_TOO_LARGE',
      })
    }
    chunks.push(chunk as Buffer)
  }
  return new Uint8Array(Buffer.concat(chunks))
}
