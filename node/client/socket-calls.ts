/**
 * Calls over a subscription's WebSocket (`{"id", "method", "payload"}` frames, docs/gateway.md):
 * no HTTP request per call, and the same retry rules as `call()`. A call in flight when the socket
 * drops has an unknown outcome; it is sent again on the next socket when that is safe.
 */
import { backoffMs, type RetryOptions, sleep } from './backoff.js'
import { type CallOptions, type CallResult, NOT_APPLIED, type RetryEvent, randomKey } from './call.js'
import { ActorMeshError } from './errors.js'
import { bytesView, encodePayload, fromBase64, type Payload, toBase64, utf8 } from './payload.js'

/** The socket side a call needs. */
export interface CallSocket {
  send(data: string): void
}

/** What socket calls need from the client. */
export interface SocketCallContext {
  retry: RetryOptions
  random: () => number
  autoIdempotencyKeys: boolean
  onRetry: ((event: RetryEvent) => void) | undefined
}

interface Pending {
  resolve: (frame: Record<string, unknown>) => void
  reject: (e: unknown) => void
}

const decoder = new TextDecoder()

/** The calls of one subscription, over whichever of its sockets is subscribed now. */
export class SocketCalls {
  private socket: CallSocket | undefined
  /** The URL of the node the socket is connected to (for RetryEvent). */
  private node = ''
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly waiting = new Set<() => void>()
  private ended: unknown

  constructor(private readonly ctx: SocketCallContext) {}

  /** A socket to `node` got subscribed: waiting calls go out on it. */
  attach(socket: CallSocket, node: string): void {
    this.socket = socket
    this.node = node
    for (const go of [...this.waiting]) go()
  }

  /** The socket closed: its calls in flight fail with `error` (they retry when that is safe). */
  detach(error: ActorMeshError): void {
    this.socket = undefined
    const inFlight = [...this.pending.values()]
    this.pending.clear()
    for (const p of inFlight) p.reject(error)
  }

  /** The subscription ended: every call, in flight or waiting, fails with `error`. */
  end(error: unknown): void {
    if (this.ended !== undefined) return
    this.ended = error
    this.socket = undefined
    const inFlight = [...this.pending.values()]
    this.pending.clear()
    for (const p of inFlight) p.reject(error)
    for (const go of [...this.waiting]) go()
  }

  /** Hands a reply frame to its call; false when no call of ours has that id. */
  reply(frame: Record<string, unknown>): boolean {
    const id = frame.id
    if (typeof id !== 'number') return false
    const p = this.pending.get(id)
    if (!p) return false
    this.pending.delete(id)
    p.resolve(frame)
    return true
  }

  /** Runs one call with retries (the rules of `call()`, CallOptions). */
  async call(method: string, payload: Payload | undefined, options: CallOptions = {}): Promise<CallResult> {
    const { signal } = options
    signal?.throwIfAborted()
    if (typeof method !== 'string' || method.length === 0)
      throw new TypeError(`Bad method '${String(method)}': expected a non-empty string`)
    const readonly = options.readonly === true
    const key =
      options.idempotencyKey ?? (!readonly && this.ctx.autoIdempotencyKeys ? randomKey() : undefined)
    const safe = readonly || key !== undefined
    const { body, contentType } = encodePayload(payload)
    const frame: Record<string, unknown> =
      contentType === 'application/octet-stream'
        ? { method, payload: toBase64(body), encoding: 'base64' }
        : { method, payload: decoder.decode(body) }
    if (key !== undefined) frame.key = key
    if (readonly) frame.readonly = true
    if (options.consistency !== undefined) frame.consistency = options.consistency
    for (let attempt = 1; ; attempt++) {
      let error: ActorMeshError
      try {
        const f = await this.once(frame, signal)
        if (f.ok === true) return result(f)
        const retryAfterMs = typeof f.retryAfterMs === 'number' ? f.retryAfterMs : undefined
        error = new ActorMeshError(String(f.code), String(f.message), {
          retryable: f.retryable === true,
          details: retryAfterMs === undefined ? {} : { retryAfterMs },
        })
      } catch (e) {
        if (signal?.aborted) throw signal.reason
        if (!(e instanceof ActorMeshError) || e === this.ended) throw e
        error = e
      }
      const retry =
        error.retryable && (safe || NOT_APPLIED.has(error.code)) && attempt < this.ctx.retry.attempts
      if (!retry) throw error
      const delayMs = backoffMs(
        attempt,
        this.ctx.retry,
        this.ctx.random,
        Number(error.details.retryAfterMs ?? 0),
      )
      this.ctx.onRetry?.({ attempt, delayMs, error, node: this.node })
      await sleep(delayMs, signal)
    }
  }

  /** Sends the call once a socket is subscribed; resolves with its reply frame. */
  private async once(
    frame: Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, unknown>> {
    const socket = await this.subscribed(signal)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id)
        reject(signal?.reason)
      }
      const done = () => signal?.removeEventListener('abort', onAbort)
      this.pending.set(id, {
        resolve: (f) => {
          done()
          resolve(f)
        },
        reject: (e) => {
          done()
          reject(e)
        },
      })
      signal?.addEventListener('abort', onAbort, { once: true })
      socket.send(JSON.stringify({ id, ...frame }))
    })
  }

  /** The subscribed socket, once there is one. */
  private subscribed(signal: AbortSignal | undefined): Promise<CallSocket> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (signal?.aborted) reject(signal.reason)
        else if (this.ended !== undefined) reject(this.ended)
        else if (this.socket) resolve(this.socket)
        else return false
        this.waiting.delete(check)
        signal?.removeEventListener('abort', check)
        return true
      }
      if (check()) return
      this.waiting.add(check)
      signal?.addEventListener('abort', check, { once: true })
    })
  }
}

function result(f: Record<string, unknown>): CallResult {
  const text = typeof f.reply === 'string' ? f.reply : ''
  const reply = f.encoding === 'base64' ? fromBase64(text) : utf8(text)
  return {
    ...bytesView(reply),
    reply,
    servedBy: typeof f.servedBy === 'string' ? f.servedBy : '',
    replayed: f.replayed === true,
  }
}
