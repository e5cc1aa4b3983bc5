/**
 * `call()` over HTTP: one request per attempt, retried with backoff while the failure is
 * retryable and a retry cannot run the call twice.
 */
import { backoffMs, type RetryOptions, retryAfterMs, sleep } from './backoff.js'
import { ActorMeshError, BAD_RESPONSE, TIMEOUT, UNREACHABLE } from './errors.js'
import type { NodeRing } from './nodes.js'
import { type Bytes, bytesView, encodePayload, type Payload } from './payload.js'

/** Options of one call. */
export interface CallOptions {
  /**
   * The call's idempotency key: a retry with the same key returns the first outcome instead of
   * running again. A write without one gets a random key from the client (unless the client was
   * made with `autoIdempotencyKeys: false`), so all retries of that call carry the same key.
   */
  idempotencyKey?: string
  /** The method writes nothing: the call is always safe to retry, and needs no key. */
  readonly?: boolean
  /** `'stale'` lets a replica answer a readonly call without asking the leader. */
  consistency?: 'strong' | 'stale'
  /** Aborts the request in flight and any backoff wait; the call rejects with the signal's reason. */
  signal?: AbortSignal
  /** A W3C trace context, sent as the `traceparent` header. */
  traceparent?: string
}

/** A call's answer. */
export interface CallResult extends Bytes {
  /** The reply bytes (same as `data`). */
  readonly reply: Uint8Array
  /** The peer id of the node that ran the call (the namespace leader). */
  readonly servedBy: string
  /** True when this is the stored outcome of an earlier call with the same idempotency key. */
  readonly replayed: boolean
}

/** One retry about to happen: after `delayMs`, try number `attempt + 1`. */
export interface RetryEvent {
  /** The attempt that failed (1 for the first). */
  attempt: number
  delayMs: number
  error: ActorMeshError
  /** The node URL the failed attempt went to. */
  node: string
}

/** What `call` needs from the client. */
export interface CallContext {
  nodes: NodeRing
  fetch: typeof fetch
  token: string | undefined
  timeoutMs: number
  retry: RetryOptions
  random: () => number
  autoIdempotencyKeys: boolean
  onRetry: ((event: RetryEvent) => void) | undefined
  /**
   * The route prefix of calls. `/v1/ns` is the documented one; nodes built before it existed
   * only know `/v1/namespaces`, and answer the new route with 404 `ACTORMESH_NOT_FOUND` (or 405,
   * as a POST to an unknown path): the client then switches to the old prefix, once, for good.
   */
  prefix: '/v1/ns' | '/v1/namespaces'
}

/** Codes of failures that certainly did not apply the call (docs/errors.md): safe to retry without a key. */
export const NOT_APPLIED: ReadonlySet<string> = new Set([
  'ACTORMESH_NOT_APPLIED',
  'ACTORMESH_PROPOSAL_DROPPED',
])

/** An attempt's failure, and what it means for the next one. */
interface Failure {
  error: ActorMeshError
  /** The request certainly never reached a node (connection refused), so retry is safe. */
  notSent: boolean
  /** Move to the next node: this one did not answer. */
  moveOn: boolean
  /** The node does not know the `/v1/ns` routes. */
  oldRoutes?: true
}

/** Runs a call with retries (see CallOptions for which failures are retried). */
export async function runCall(
  ctx: CallContext,
  target: { namespace: string; actor: string; method: string },
  payload: Payload | undefined,
  options: CallOptions = {},
): Promise<CallResult> {
  const { signal } = options
  signal?.throwIfAborted()
  const readonly = options.readonly === true
  const key = options.idempotencyKey ?? (!readonly && ctx.autoIdempotencyKeys ? randomKey() : undefined)
  const safe = readonly || key !== undefined
  const { body, contentType } = encodePayload(payload)
  const headers: Record<string, string> = { 'content-type': contentType }
  if (ctx.token !== undefined) headers.authorization = `Bearer ${ctx.token}`
  if (key !== undefined) headers['idempotency-key'] = key
  if (options.traceparent !== undefined) headers.traceparent = options.traceparent
  const query = new URLSearchParams()
  if (readonly) query.set('readonly', 'true')
  if (options.consistency !== undefined) query.set('consistency', options.consistency)
  const route = `${enc(target.namespace)}/actors/${enc(target.actor)}/${enc(target.method)}`
  const search = query.size > 0 ? `?${query}` : ''
  for (let attempt = 1; ; attempt++) {
    const node = ctx.nodes.pick()
    const url = `${node.url}${ctx.prefix}/${route}${search}`
    const out = await attemptOnce(ctx, url, { method: 'POST', headers, body }, signal)
    if (!('error' in out)) return out
    if (out.oldRoutes && ctx.prefix === '/v1/ns') {
      ctx.prefix = '/v1/namespaces'
      attempt-- // a route probe, not a failure
      continue
    }
    if (out.moveOn) ctx.nodes.failed(node.index)
    const retry =
      out.error.retryable &&
      (safe || out.notSent || NOT_APPLIED.has(out.error.code)) &&
      attempt < ctx.retry.attempts
    if (!retry) throw out.error
    const delayMs = backoffMs(attempt, ctx.retry, ctx.random, Number(out.error.details.retryAfterMs ?? 0))
    ctx.onRetry?.({ attempt, delayMs, error: out.error, node: node.url })
    await sleep(delayMs, signal)
  }
}

/** One HTTP request: the result, or a failure that says what it means. */
async function attemptOnce(
  ctx: CallContext,
  url: string,
  init: { method: string; headers: Record<string, string>; body: Uint8Array },
  signal: AbortSignal | undefined,
): Promise<CallResult | Failure> {
  const timeout = AbortSignal.timeout(ctx.timeoutMs)
  const both = signal ? AbortSignal.any([signal, timeout]) : timeout
  let res: Response
  let reply: Uint8Array
  try {
    // Called detached: a browser's fetch throws 'Illegal invocation' when `this` is not the window.
    const fetchFn = ctx.fetch
    res = await fetchFn(url, { ...init, signal: both })
    reply = new Uint8Array(await res.arrayBuffer())
  } catch (e) {
    if (signal?.aborted) throw signal.reason
    if (timeout.aborted) {
      const error = new ActorMeshError(TIMEOUT, `No answer from '${url}' within timeoutMs ${ctx.timeoutMs}`, {
        retryable: true,
        cause: e,
      })
      return { error, notSent: false, moveOn: true }
    }
    const error = new ActorMeshError(UNREACHABLE, `Cannot reach '${url}': ${describe(e)}`, {
      retryable: true,
      cause: e,
    })
    return { error, notSent: refused(e), moveOn: true }
  }
  if (res.ok) {
    const view = bytesView(reply)
    return {
      ...view,
      reply,
      servedBy: res.headers.get('x-actormesh-served-by') ?? '',
      replayed: res.headers.get('x-actormesh-replayed') === 'true',
    }
  }
  return answerFailure(url, res, reply)
}

/** The failure a node's error answer describes (`{code, message}` JSON, docs/errors.md). */
function answerFailure(url: string, res: Response, body: Uint8Array): Failure {
  let parsed: { code?: unknown; message?: unknown } | undefined
  try {
    parsed = JSON.parse(new TextDecoder().decode(body)) as typeof parsed
  } catch {
    parsed = undefined
  }
  const code = typeof parsed?.code === 'string' ? parsed.code : BAD_RESPONSE
  const message =
    typeof parsed?.message === 'string'
      ? parsed.message
      : `Node '${url}' answered ${res.status} without an ActorMesh error body`
  // 503: no leader, busy, outcome unknown, ... (Retry-After); 429: over a rate limit; 504: a
  // forwarded request timed out, outcome unknown — all can succeed later, retried only when safe.
  const retryable = res.status === 503 || res.status === 429 || res.status === 504
  const details: Record<string, unknown> = {}
  const after = retryAfterMs(res.headers.get('retry-after'))
  if (after > 0) details.retryAfterMs = after
  const error = new ActorMeshError(code, message, { status: res.status, retryable, details })
  const oldRoutes =
    (res.status === 404 && code === 'ACTORMESH_NOT_FOUND') ||
    (res.status === 405 && code === 'ACTORMESH_METHOD_NOT_ALLOWED')
  // A node that is stopping hands its work over: the next node can take the retry at once.
  return {
    error,
    notSent: false,
    moveOn: code === 'ACTORMESH_RPC_CLOSED',
    ...(oldRoutes ? { oldRoutes } : {}),
  }
}

/** Whether a fetch failure says the connection was refused (nothing was sent). */
function refused(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return true
  }
  return false
}

function describe(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause
  if (cause && typeof cause.code === 'string') return `${String((e as Error).message)} (${cause.code})`
  return e instanceof Error ? e.message : String(e)
}

function enc(part: string): string {
  if (typeof part !== 'string' || part.length === 0)
    throw new TypeError(`Bad name '${String(part)}': namespaces, actors and methods are non-empty strings`)
  return encodeURIComponent(part)
}

/** 128 random bits as hex: an idempotency key no other call will pick. */
export function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  let out = ''
  for (const b of bytes) out += b.toString(16).padStart(2, '0')
  return out
}
