/**
 * The commands' side of a node's HTTP API: the node's URL and bearer token from the options,
 * requests that wait out a node's retryable (503) answers, that fall back from the `/v1/ns/`
 * routes to the older `/v1/namespaces/` ones on a node without them, and that turn a 4xx answer
 * into a `RefusedError` (exit 3).
 */
import { RefusedError, UsageError } from './errors.js'
import type { OptionSpec, ResolvedOptions } from './options.js'
import { str, wholeNumber } from './options.js'

/** The default gateway a command talks to. */
export const DEFAULT_NODE_URL = 'http://127.0.0.1:8080'
/** How long one request waits for a node's answer, in milliseconds. */
export const REQUEST_TIMEOUT_MS = 60_000
/** How long a command keeps retrying a node's retryable (503) answers, in milliseconds. */
export const RETRY_WINDOW_MS = 15_000
/** The longest `--retry-ms` (an hour). */
const RETRY_MS_MAX = 3_600_000
/** The shortest and longest wait between two retries, in milliseconds. */
const RETRY_WAIT_MS_MIN = 100
const RETRY_WAIT_MS_MAX = 2_000

/** The flags of every command that talks to a node. */
export const nodeOptions: Record<string, OptionSpec> = {
  node: { type: 'string', default: DEFAULT_NODE_URL },
  token: { type: 'string' },
  'retry-ms': { type: 'string' },
}

/** Help lines of `nodeOptions`. */
export const NODE_FLAGS_HELP = `  --node URL            the node's gateway             [ACTORMESH_NODE]   (${DEFAULT_NODE_URL})
  --token TOKEN         bearer token (sent as authorization: Bearer) [ACTORMESH_TOKEN]
  --retry-ms MS         keep retrying the node's 503 answers this long [ACTORMESH_RETRY_MS] (${RETRY_WINDOW_MS})`

/** A node to talk to. */
export interface NodeTarget {
  /** The gateway URL, without a trailing slash. */
  url: string
  /** Sent as `authorization: Bearer <token>` when set. */
  token?: string
  /** How long to keep retrying retryable (503) answers, in milliseconds (default `RETRY_WINDOW_MS`). */
  retryMs?: number
}

/** `--node`, `--token` and `--retry-ms` as a target; a URL that is not http(s) is a usage error. */
export function nodeTarget(o: ResolvedOptions): NodeTarget {
  const text = str(o, 'node') ?? DEFAULT_NODE_URL
  const token = str(o, 'token')
  const retryMs = wholeNumber(o, 'retry-ms', 0, RETRY_MS_MAX)
  return {
    url: checkNodeUrl(text, '--node'),
    ...(token ? { token } : {}),
    ...(retryMs !== undefined ? { retryMs } : {}),
  }
}

/** An http(s) URL without a trailing slash; anything else is a usage error naming `flag`. */
export function checkNodeUrl(text: string, flag: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError(
      `Invalid ${flag} '${text}': expected the node's gateway URL, e.g. ${DEFAULT_NODE_URL}`,
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`Invalid ${flag} '${text}': expected an http:// or https:// URL`)
  return url.href.replace(/\/+$/, '')
}

/**
 * The answers of a node that lacks a route: no route at all, or (for POST/DELETE on a path its
 * GET fallback catches) a method the path does not take.
 */
const OLDER_NODE = new Set(['404 ACTORMESH_NOT_FOUND', '405 ACTORMESH_METHOD_NOT_ALLOWED'])

/** One request to a node. */
export interface NodeRequest {
  method?: string
  /** The route; with a second path, that one is tried once when the node has no such route (404, 405). */
  path: string | readonly [current: string, older: string]
  body?: Uint8Array | string
  headers?: Record<string, string>
  /** Which retryable (503) codes to wait out (default: every one); others fail at once. */
  retryable?: (code: string) => boolean
  /** How long to keep retrying, in milliseconds (default: the target's, else `RETRY_WINDOW_MS`). */
  retryMs?: number
  signal?: AbortSignal
}

/** A node's error answer, decoded. */
interface ErrorAnswer {
  code: string
  message: string
}

/**
 * Sends `req` to the node and resolves with its 2xx response. A node that cannot be reached is an
 * `Error` (exit 1); a 4xx answer a `RefusedError` (exit 3); a 503 is retried after its
 * `Retry-After` within the retry window, then fails like any 5xx (exit 1).
 */
export async function nodeRequest(target: NodeTarget, req: NodeRequest): Promise<Response> {
  req.signal?.throwIfAborted()
  const paths = typeof req.path === 'string' ? [req.path] : [...req.path]
  const method = req.method ?? 'GET'
  const deadline = Date.now() + (req.retryMs ?? target.retryMs ?? RETRY_WINDOW_MS)
  const headers = { ...req.headers, ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) }
  for (;;) {
    const path = paths[0]!
    const res = await send(target, path, method, headers, req)
    if (res.ok) return res
    const answer = await errorAnswer(res)
    const said = `Node at ${target.url} answered ${res.status} to ${method} ${path}: ${answer.message}`
    if (paths.length > 1 && OLDER_NODE.has(`${res.status} ${answer.code}`)) {
      paths.shift() // a node without the newer route: the same request on the older one
      continue
    }
    if (res.status === 503 && (req.retryable?.(answer.code) ?? true) && Date.now() < deadline) {
      const after = Number(res.headers.get('retry-after') ?? '0') * 1_000
      const wait = Math.min(RETRY_WAIT_MS_MAX, Math.max(RETRY_WAIT_MS_MIN, after), deadline - Date.now())
      await new Promise((r) => setTimeout(r, Math.max(0, wait)))
      req.signal?.throwIfAborted()
      continue
    }
    if (res.status >= 400 && res.status < 500) throw new RefusedError(res.status, answer.code, said)
    throw Object.assign(new Error(said), { code: answer.code })
  }
}

/** `nodeRequest` answering JSON. */
export async function nodeJson<T>(target: NodeTarget, req: NodeRequest): Promise<T> {
  const res = await nodeRequest(target, req)
  const text = await res.text()
  try {
    return JSON.parse(text) as T
  } catch {
    throw new Error(`Node at ${target.url} answered ${req.method ?? 'GET'} with something other than JSON`)
  }
}

async function send(
  target: NodeTarget,
  path: string,
  method: string,
  headers: Record<string, string>,
  req: NodeRequest,
): Promise<Response> {
  const signals = [AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...(req.signal ? [req.signal] : [])]
  try {
    return await fetch(`${target.url}${path}`, {
      method,
      headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
      signal: AbortSignal.any(signals),
    })
  } catch (e) {
    req.signal?.throwIfAborted()
    throw new Error(`Cannot reach ${target.url} (${reachFailure(e)}): is a node running?`)
  }
}

/** Why a fetch failed, in a word: the socket error's code, or a timeout. */
function reachFailure(e: unknown): string {
  if ((e as Error).name === 'TimeoutError') return `no answer within ${REQUEST_TIMEOUT_MS} ms`
  const cause = (e as { cause?: { code?: unknown; message?: unknown; errors?: Array<{ code?: unknown }> } })
    .cause
  const code = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message // e.g. 'bad port' for port 9
  return typeof code === 'string' ? code : String((e as Error).message)
}

async function errorAnswer(res: Response): Promise<ErrorAnswer> {
  const text = await res.text()
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown }
    return {
      code: typeof body.code === 'string' ? body.code : 'ACTORMESH_INTERNAL',
      message: typeof body.message === 'string' ? body.message : text.trim(),
    }
  } catch {
    return { code: 'ACTORMESH_INTERNAL', message: text.trim() }
  }
}

/** `/v1/ns/<ns>…` and its older alias `/v1/namespaces/<ns>…`, the namespace URL-encoded. */
export function nsPaths(ns: string, rest = ''): [string, string] {
  const n = encodeURIComponent(ns)
  return [`/v1/ns/${n}${rest}`, `/v1/namespaces/${n}${rest}`]
}
