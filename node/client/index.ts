/**
 * `actormesh/client`: a typed client of an ActorMesh cluster for Node 22+ and browsers. It calls
 * actors over HTTP and follows their broadcasts over a WebSocket, given a list of node URLs: it
 * moves to the next node when one does not answer, retries what can be retried (with idempotency
 * keys, so a retried write runs once) and stops at an AbortSignal. docs/client.md has the guide.
 *
 * Only web globals are used (fetch, WebSocket, AbortSignal, crypto.getRandomValues, TextEncoder,
 * atob), no Node module, so a bundler can ship this folder to a browser.
 */
import { type RetryOptions, retryOptions } from './backoff.js'
import { type CallContext, type CallOptions, type CallResult, type RetryEvent, runCall } from './call.js'
import { NodeRing } from './nodes.js'
import type { Payload } from './payload.js'
import {
  type SubscribeContext,
  type SubscribeOptions,
  Subscription,
  type WebSocketConstructor,
} from './subscription.js'

export { type RetryOptions, seededRandom } from './backoff.js'
export type { CallOptions, CallResult, RetryEvent } from './call.js'
export { ActorMeshError } from './errors.js'
export type { Bytes, Payload } from './payload.js'
export type {
  ActorEvent,
  SubscribeOptions,
  Subscription,
  WebSocketConstructor,
  WebSocketLike,
} from './subscription.js'

/** How to reach the cluster, and how hard to try. */
export interface ClientOptions {
  /** Base URLs of nodes, e.g. `['http://10.0.0.1:8080', 'http://10.0.0.2:8080']`; the first is tried first. */
  nodes: string[]
  /** A bearer token (admin, or a caller token of the namespaces used), sent as `authorization: Bearer`. */
  token?: string
  /**
   * One HTTP attempt's time limit (a timed-out attempt counts as a failure of unknown outcome), and
   * how long a subscription's socket may take to be subscribed. Default 30,000 ms.
   */
  timeoutMs?: number
  /** Retry budget and backoff (see RetryOptions); defaults 6 attempts, 100 ms base, 5,000 ms cap. */
  retry?: Partial<RetryOptions>
  /** The fetch to use; default the global one. */
  fetch?: typeof fetch
  /** The WebSocket constructor to use; default the global one (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor
  /** The jitter source, a number in [0, 1); tests pass `seededRandom(seed)`. Default Math.random. */
  random?: () => number
  /** Give writes without an idempotency key a random one, so they can be retried. Default true. */
  autoIdempotencyKeys?: boolean
  /** Events a subscription holds for a slow consumer before it gives up (see SubscribeOptions). Default 1,024. */
  queueEventsMax?: number
  /** Told before each retry (of a call, or of a subscription's reconnect): for logs and metrics. */
  onRetry?: (event: RetryEvent) => void
}

/** A client of one cluster. Cheap to keep; holds no connection between calls except subscriptions. */
export class ActorMeshClient {
  private readonly callCtx: CallContext
  private readonly subCtx: Omit<SubscribeContext, 'WebSocket'> & {
    WebSocket: WebSocketConstructor | undefined
  }
  private readonly queueEventsMax: number

  constructor(options: ClientOptions) {
    const nodes = new NodeRing(options.nodes)
    const timeoutMs = options.timeoutMs ?? 30_000
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new RangeError(`Bad timeoutMs '${timeoutMs}': expected a positive number`)
    const fetchFn = options.fetch ?? globalThis.fetch
    if (typeof fetchFn !== 'function') throw new TypeError('No fetch: pass options.fetch on this platform')
    const retry = retryOptions(options.retry)
    const random = options.random ?? Math.random
    this.queueEventsMax = options.queueEventsMax ?? 1_024
    this.callCtx = {
      nodes,
      fetch: fetchFn,
      token: options.token,
      timeoutMs,
      retry,
      random,
      autoIdempotencyKeys: options.autoIdempotencyKeys ?? true,
      onRetry: options.onRetry,
      prefix: '/v1/ns',
    }
    this.subCtx = {
      nodes,
      token: options.token,
      retry,
      random,
      WebSocket: options.WebSocket ?? (globalThis.WebSocket as unknown as WebSocketConstructor | undefined),
      onRetry: options.onRetry,
      timeoutMs,
      autoIdempotencyKeys: options.autoIdempotencyKeys ?? true,
    }
  }

  /**
   * Calls `method` of actor `actor` in `namespace`. `payload` is sent as bytes (Uint8Array), UTF-8
   * (string) or JSON (anything else). Retryable failures are retried with backoff when that cannot
   * run the call twice (see CallOptions); others reject with ActorMeshError.
   */
  call(
    namespace: string,
    actor: string,
    method: string,
    payload?: Payload,
    options?: CallOptions,
  ): Promise<CallResult> {
    return runCall(this.callCtx, { namespace, actor, method }, payload, options)
  }

  /**
   * Follows the broadcasts of actor `actor` in `namespace` from now (or after `options.after`),
   * reconnecting to other nodes without gap or duplicate. Iterate the result with `for await`.
   */
  subscribe(namespace: string, actor: string, options: SubscribeOptions = {}): Subscription {
    for (const [what, v] of [
      ['namespace', namespace],
      ['actor', actor],
    ] as const) {
      if (typeof v !== 'string' || v.length === 0)
        throw new TypeError(`Bad ${what} '${String(v)}': expected a non-empty string`)
    }
    const WS = this.subCtx.WebSocket
    if (typeof WS !== 'function') throw new TypeError('No WebSocket: pass options.WebSocket on this platform')
    return new Subscription(
      { ...this.subCtx, WebSocket: WS },
      { namespace, actor },
      options,
      this.queueEventsMax,
    )
  }
}
