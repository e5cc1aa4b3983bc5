/**
 * `subscribe()`: an actor's broadcasts as an async iterator over a WebSocket
 * (`GET /v1/ns/{ns}/actors/{id}/ws`, docs/gateway.md). When the socket drops — the node died or
 * stopped, or closed us as a slow reader — the subscription reconnects to the next node with
 * `after=<last position received>`, so the consumer sees every broadcast once, in commit order.
 */
import { backoffMs, type RetryOptions, sleep } from './backoff.js'
import type { CallOptions, CallResult, RetryEvent } from './call.js'
import { ActorMeshError, BAD_RESPONSE, QUEUE_FULL, UNREACHABLE } from './errors.js'
import type { NodeRing } from './nodes.js'
import { type Bytes, bytesView, fromBase64, type Payload, utf8 } from './payload.js'
import { SocketCalls } from './socket-calls.js'

/** Options of one subscription. */
export interface SubscribeOptions {
  /** Resume right after this position (an event's `pos` from an earlier subscription, or `sub.pos`). */
  after?: string
  /** Ends the subscription: the socket is closed and the iterator rejects with the signal's reason. */
  signal?: AbortSignal
  /** How payloads travel on the wire; the events hold bytes either way. Default `'text'`. */
  encoding?: 'text' | 'base64'
  /**
   * Events received but not yet taken by the consumer. A WebSocket cannot be paused, so a consumer
   * that falls this far behind ends the subscription with `ACTORMESH_CLIENT_QUEUE_FULL` (after
   * the queued events); resubscribe with `after: sub.pos`. Default: the client's `queueEventsMax`.
   */
  queueEventsMax?: number
}

/** One broadcast of the actor. */
export interface ActorEvent extends Bytes {
  /** Its position (`"<index>.<n>"`), the same on every node; pass it as `after` to resume. */
  readonly pos: string
}

/** The part of the WebSocket API the subscription uses (the browser's, and Node 22+'s global). */
export interface WebSocketLike {
  send(data: string): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void
  addEventListener(type: 'error', listener: () => void): void
}

/** A WebSocket constructor; the second argument (Node only) carries the bearer token's header. */
export type WebSocketConstructor = new (
  url: string,
  init?: { headers: Record<string, string> },
) => WebSocketLike

/** What a subscription needs from the client. */
export interface SubscribeContext {
  nodes: NodeRing
  token: string | undefined
  retry: RetryOptions
  random: () => number
  WebSocket: WebSocketConstructor
  onRetry: ((event: RetryEvent) => void) | undefined
  /** A socket not subscribed (no `ready` frame) within this is closed and counts as a failed attempt. */
  timeoutMs: number
  autoIdempotencyKeys: boolean
}

/** How one socket ended. */
interface SocketEnd {
  /** The socket got its `ready` frame (it was subscribed). */
  wasReady: boolean
  code: number
  reason: string
  /** The `{"error": code, "message"}` frame the node sent before closing, if any. */
  errorFrame?: { error: string; message?: unknown; since?: unknown }
}

/** Close codes after which reconnecting cannot help (docs/gateway.md "Close codes"). */
const TERMINAL_CLOSE: Record<number, string> = {
  1003: 'ACTORMESH_WS_BAD_FRAME',
  1007: 'ACTORMESH_WS_BAD_FRAME',
  1009: 'ACTORMESH_WS_BAD_FRAME',
  4404: 'ACTORMESH_NAMESPACE_NOT_FOUND',
  4410: 'ACTORMESH_EVENTS_GONE',
}

/** The code the client closes a socket with when its queue is full (4000–4999 are free for use). */
const CLOSE_QUEUE_FULL = 4000

/**
 * An actor's broadcasts, in commit order, each once. Iterate it with `for await`; `break`,
 * `close()` or the options' signal closes the socket.
 */
export class Subscription implements AsyncIterableIterator<ActorEvent> {
  private readonly queue: ActorEvent[] = []
  private waiter:
    | { resolve: (r: IteratorResult<ActorEvent>) => void; reject: (e: unknown) => void }
    | undefined
  private readonly readyWaiters: Array<{ resolve: (pos: string) => void; reject: (e: unknown) => void }> = []
  private failure: { error: unknown; thrown: boolean } | undefined
  private closed = false
  /** Where a new socket resumes: the last event received, or the first socket's ready position. */
  private received: string | undefined
  private delivered: string | undefined
  private started: string | undefined
  private socket: WebSocketLike | undefined
  private readonly stop = new AbortController()
  private readonly queueEventsMax: number
  private readonly onAbort: () => void
  private readonly calls: SocketCalls

  constructor(
    private readonly ctx: SubscribeContext,
    private readonly target: { namespace: string; actor: string },
    private readonly options: SubscribeOptions,
    queueEventsMax: number,
  ) {
    if (options.after !== undefined) parsePos(options.after)
    if (options.encoding !== undefined && options.encoding !== 'text' && options.encoding !== 'base64')
      throw new TypeError(`Bad encoding '${String(options.encoding)}': use 'text' or 'base64'`)
    this.queueEventsMax = options.queueEventsMax ?? queueEventsMax
    if (!Number.isInteger(this.queueEventsMax) || this.queueEventsMax < 1)
      throw new RangeError(`Bad queueEventsMax '${this.queueEventsMax}': expected an integer of at least 1`)
    options.signal?.throwIfAborted()
    this.received = options.after
    this.delivered = options.after
    this.calls = new SocketCalls(ctx)
    this.onAbort = () => {
      this.queue.length = 0 // an abort ends the subscription now, not after the queued events
      this.fail(options.signal?.reason)
    }
    options.signal?.addEventListener('abort', this.onAbort, { once: true })
    void this.run()
  }

  /** The position of the last event the consumer took (or where the subscription started); resume with it as `after`. */
  get pos(): string | undefined {
    return this.delivered ?? this.started
  }

  /** Resolves with the starting position once the first socket is subscribed; rejects if the subscription ends first. */
  ready(): Promise<string> {
    if (this.started !== undefined) return Promise.resolve(this.started)
    if (this.failure) return Promise.reject(this.failure.error)
    if (this.closed) return Promise.reject(new Error('The subscription was closed before it was ready'))
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }))
  }

  /**
   * Calls a method of the subscribed actor over the subscription's socket (waiting until one is
   * subscribed), with `call()`'s retry and key rules. A call in flight when the socket drops has an
   * unknown outcome; it is sent again on the next socket when that is safe. Its own broadcast may
   * reach the iterator before or after the reply.
   */
  call(method: string, payload?: Payload, options?: CallOptions): Promise<CallResult> {
    return this.calls.call(method, payload, options)
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  next(): Promise<IteratorResult<ActorEvent>> {
    const event = this.queue.shift()
    if (event) {
      this.delivered = event.pos
      return Promise.resolve({ value: event, done: false })
    }
    if (this.failure && !this.failure.thrown) {
      this.failure.thrown = true
      return Promise.reject(this.failure.error)
    }
    if (this.closed || this.failure) return Promise.resolve({ value: undefined, done: true })
    if (this.waiter) return Promise.reject(new Error('Cannot call next() while another next() is pending'))
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
    })
  }

  /** Called by `break` in `for await`: closes the socket. */
  return(): Promise<IteratorResult<ActorEvent>> {
    this.close()
    return Promise.resolve({ value: undefined, done: true })
  }

  /** Closes the socket and ends the iteration (a pending `next()` resolves as done). */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.finish()
    this.calls.end(new ActorMeshError(UNREACHABLE, 'The subscription was closed with the call in flight'))
    const w = this.waiter
    this.waiter = undefined
    w?.resolve({ value: undefined, done: true })
    for (const r of this.readyWaiters.splice(0))
      r.reject(new Error('The subscription was closed before it was ready'))
  }

  /** Connects, and reconnects to the next node after each drop, until closed or failed. */
  private async run(): Promise<void> {
    let failures = 0
    while (!this.over()) {
      const node = this.ctx.nodes.pick()
      const end = await this.connect(node.url)
      if (this.over()) return
      const terminal = terminalError(end)
      if (terminal) return this.fail(terminal)
      this.ctx.nodes.failed(node.index)
      failures = end.wasReady ? 1 : failures + 1
      const error = new ActorMeshError(
        UNREACHABLE,
        `WebSocket to '${node.url}' closed (code ${end.code}${end.reason ? ` '${end.reason}'` : ''}) ${end.wasReady ? 'after' : 'before'} it was subscribed`,
        { retryable: true, details: { closeCode: end.code } },
      )
      if (!end.wasReady && failures >= this.ctx.retry.attempts) {
        const why = 'a refused upgrade (unknown namespace, missing token) looks the same to a WebSocket'
        return this.fail(
          new ActorMeshError(UNREACHABLE, `${error.message}; gave up after ${failures} attempts (${why})`, {
            retryable: true,
            cause: error,
          }),
        )
      }
      const delayMs = backoffMs(failures, this.ctx.retry, this.ctx.random)
      this.ctx.onRetry?.({ attempt: failures, delayMs, error, node: node.url })
      try {
        await sleep(delayMs, this.stop.signal)
      } catch {
        return
      }
    }
  }

  /** Opens one socket; resolves when it closed. */
  private connect(base: string): Promise<SocketEnd> {
    const q = new URLSearchParams()
    if (this.received !== undefined) q.set('after', this.received)
    if (this.options.encoding !== undefined) q.set('encoding', this.options.encoding)
    const { namespace, actor } = this.target
    const path = `/v1/ns/${encodeURIComponent(namespace)}/actors/${encodeURIComponent(actor)}/ws`
    const url = `${base.replace(/^http/, 'ws')}${path}${q.size > 0 ? `?${q}` : ''}`
    return new Promise((resolve) => {
      const end: SocketEnd = { wasReady: false, code: 1006, reason: '' }
      let ws: WebSocketLike
      try {
        // Browsers cannot set headers on a WebSocket; the init argument is Node's (undici) extension.
        const token = this.ctx.token
        ws =
          token === undefined
            ? new this.ctx.WebSocket(url)
            : new this.ctx.WebSocket(url, { headers: { authorization: `Bearer ${token}` } })
      } catch (e) {
        end.reason = e instanceof Error ? e.message : String(e)
        resolve(end)
        return
      }
      this.socket = ws
      // A node that accepts the connection but never subscribes it (or a SYN that is never
      // answered) would hold the subscription forever: give up on the socket after timeoutMs.
      const opening = setTimeout(() => {
        if (!end.wasReady) ws.close(1000, 'not subscribed in time')
      }, this.ctx.timeoutMs)
      ws.addEventListener('message', (event) => {
        const wasReady = end.wasReady
        this.frame(event.data, end)
        if (end.wasReady && !wasReady) {
          clearTimeout(opening)
          this.calls.attach(ws, base)
        }
      })
      ws.addEventListener('error', () => {}) // a close event follows and says how it ended
      ws.addEventListener('close', (event) => {
        clearTimeout(opening)
        const lost = `The WebSocket to '${base}' closed (code ${event.code}) with the call in flight; its outcome is unknown`
        this.calls.detach(new ActorMeshError(UNREACHABLE, lost, { retryable: true }))
        if (this.socket === ws) this.socket = undefined
        resolve({ ...end, code: event.code, reason: event.reason })
      })
    })
  }

  /** One frame from the node. */
  private frame(data: unknown, end: SocketEnd): void {
    if (this.over()) return
    let f: Record<string, unknown>
    try {
      if (typeof data !== 'string') throw new TypeError('not a text frame')
      f = JSON.parse(data) as Record<string, unknown>
    } catch {
      this.fail(
        new ActorMeshError(
          BAD_RESPONSE,
          `A frame from the node is not JSON text: '${String(data).slice(0, 80)}'`,
        ),
      )
      return
    }
    if (typeof f.event === 'string' && typeof f.pos === 'string') {
      this.event(f.event, f.pos, f.encoding === 'base64')
    } else if (f.id !== undefined) {
      this.calls.reply(f)
    } else if (f.ready === true && typeof f.pos === 'string') {
      end.wasReady = true
      this.received ??= f.pos
      if (this.started === undefined) {
        this.started = f.pos
        for (const r of this.readyWaiters.splice(0)) r.resolve(f.pos)
      }
    } else if (typeof f.error === 'string') {
      end.errorFrame = f as SocketEnd['errorFrame']
    }
  }

  /** One broadcast: handed to a waiting consumer, or queued. */
  private event(payload: string, pos: string, base64: boolean): void {
    // The node resumes strictly after `received`; anything else is a broken guarantee, not data.
    if (this.received !== undefined && comparePos(parsePos(pos), parsePos(this.received)) <= 0) {
      this.fail(new Error(`Broken order: event at ${pos} arrived after ${this.received}`))
      return
    }
    if (this.queue.length >= this.queueEventsMax) {
      this.socket?.close(CLOSE_QUEUE_FULL, 'client queue full')
      this.socket = undefined
      const message = `Subscription to '${this.target.actor}' fell ${this.queueEventsMax} events behind (queueEventsMax); resubscribe with after '${this.received}'`
      this.fail(new ActorMeshError(QUEUE_FULL, message, { details: { pos: this.received } }))
      return
    }
    this.received = pos
    const event: ActorEvent = { pos, ...bytesView(base64 ? fromBase64(payload) : utf8(payload)) }
    const w = this.waiter
    if (w) {
      this.waiter = undefined
      this.delivered = pos
      w.resolve({ value: event, done: false })
    } else this.queue.push(event)
  }

  /** Ends the subscription with `error`, thrown to the consumer after the events already queued. */
  private fail(error: unknown): void {
    if (this.over()) return
    this.failure = { error, thrown: false }
    this.finish()
    this.calls.end(error)
    for (const r of this.readyWaiters.splice(0)) r.reject(error)
    const w = this.waiter
    if (w && this.queue.length === 0) {
      this.waiter = undefined
      this.failure.thrown = true
      w.reject(error)
    }
  }

  private finish(): void {
    this.stop.abort()
    this.options.signal?.removeEventListener('abort', this.onAbort)
    this.socket?.close(1000, 'client closed')
    this.socket = undefined
  }

  private over(): boolean {
    return this.closed || this.failure !== undefined
  }
}

/** The error a socket's end means when reconnecting cannot help; undefined when it can. */
function terminalError(end: SocketEnd): ActorMeshError | undefined {
  const code = TERMINAL_CLOSE[end.code]
  if (code === undefined) return undefined
  const f = end.errorFrame
  const message =
    typeof f?.message === 'string' ? f.message : `The node closed the WebSocket with ${end.code}`
  return new ActorMeshError(f?.error ?? code, message, {
    details: { closeCode: end.code, ...(f?.since !== undefined ? { since: f.since } : {}) },
  })
}

/** `[index, n]` of a position; a cursor without `.n` covers its whole entry. */
function parsePos(text: string): [number, number] {
  const m = /^(\d{1,15})(?:\.(\d{1,9}))?$/.exec(text)
  if (!m) throw new RangeError(`Bad position '${text}': expected <index> or <index>.<n>, e.g. '17.0'`)
  return [Number(m[1]), m[2] === undefined ? Number.POSITIVE_INFINITY : Number(m[2])]
}

function comparePos(a: [number, number], b: [number, number]): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] === b[1] ? 0 : a[1] < b[1] ? -1 : 1
}
