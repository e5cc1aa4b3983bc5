import { Packr } from 'msgpackr'
import type { PeerLinks } from './p2p/links.js'
import { Channel } from './raft-transport.js'

const packr = new Packr({ useRecords: false })

/** A remote call failed; `code` is the remote error's code or one of the RPC layer's own. */
export class RpcError extends Error {
  readonly code: string
  /** Extra fields the remote attached (e.g. a leader hint). */
  readonly details: Record<string, unknown>
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'RpcError'
    this.code = code
    this.details = details
  }
}

/** A handler answers one request; a thrown error with a `code` travels back to the caller. */
export type RpcHandler = (from: string, payload: unknown, signal: AbortSignal) => Promise<unknown>

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
  timer: NodeJS.Timeout
  peer: string
}

type Wire =
  | { k: 'q'; id: number; m: string; p: unknown }
  | { k: 'r'; id: number; ok: true; v: unknown }
  | { k: 'r'; id: number; ok: false; c: string; e: string; d?: Record<string, unknown> }

export interface RpcOptions {
  /** Outstanding outgoing requests at most; beyond it `request` fails at once. */
  pendingRequestsMax?: number
  /** Requests from peers being served at once at most; beyond it they are refused as busy. */
  servingRequestsMax?: number
  defaultTimeoutMs?: number
}

/**
 * Request/response over the peer links' long-lived streams: each request carries an id, answers
 * come back on the same link (one stream per peer pair beats a stream per request tenfold). Both
 * the outgoing and the incoming side are bounded; a request that gets no answer in time fails with
 * `ACTORMESH_RPC_TIMEOUT` and its outcome is unknown to the caller.
 */
export class Rpc {
  private readonly handlers = new Map<string, RpcHandler>()
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private serving = 0
  private readonly shutdown = new AbortController()
  private readonly pendingRequestsMax: number
  private readonly servingRequestsMax: number
  private readonly defaultTimeoutMs: number

  constructor(
    private readonly links: PeerLinks,
    options: RpcOptions = {},
  ) {
    this.pendingRequestsMax = options.pendingRequestsMax ?? 100_000
    this.servingRequestsMax = options.servingRequestsMax ?? 10_000
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 10_000
  }

  /** Registers the handler of `method` (one per method). */
  handle(method: string, handler: RpcHandler): void {
    if (this.handlers.has(method)) throw new TypeError(`Cannot register RPC method '${method}' twice`)
    this.handlers.set(method, handler)
  }

  /** Calls `method` on `peer`. */
  request(
    peer: string,
    method: string,
    payload: unknown,
    options?: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<unknown> {
    options?.signal?.throwIfAborted()
    if (this.shutdown.signal.aborted)
      return Promise.reject(new RpcError('ACTORMESH_RPC_CLOSED', 'Cannot call: the node is closing'))
    if (this.pending.size >= this.pendingRequestsMax) {
      return Promise.reject(
        new RpcError(
          'ACTORMESH_RPC_BUSY',
          `Cannot call '${method}': ${this.pendingRequestsMax} requests are outstanding`,
        ),
      )
    }
    const id = this.nextId++
    return new Promise<unknown>((resolve, reject) => {
      const timeoutMs = options?.timeoutMs ?? this.defaultTimeoutMs
      const onAbort = () => this.settle(id, undefined, options!.signal!.reason as Error)
      const timer = setTimeout(
        () =>
          this.settle(
            id,
            undefined,
            new RpcError(
              'ACTORMESH_RPC_TIMEOUT',
              `No answer to '${method}' from ${peer} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      )
      this.pending.set(id, {
        resolve: (v) => {
          options?.signal?.removeEventListener('abort', onAbort)
          resolve(v)
        },
        reject: (e) => {
          options?.signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
        timer,
        peer,
      })
      options?.signal?.addEventListener('abort', onAbort, { once: true })
      if (!this.write(peer, { k: 'q', id, m: method, p: payload })) {
        this.settle(
          id,
          undefined,
          new RpcError('ACTORMESH_PEER_UNREACHABLE', `Cannot reach ${peer} to call '${method}'`),
        )
      }
    })
  }

  /** Feeds one link frame of the RPC channel (without its channel byte). */
  receive(from: string, body: Uint8Array): void {
    let msg: Wire
    try {
      msg = packr.unpack(body) as Wire
    } catch {
      this.links.reportAbuse(from)
      return
    }
    if (msg?.k === 'q' && typeof msg.id === 'number' && typeof msg.m === 'string') void this.serve(from, msg)
    else if (msg?.k === 'r' && typeof msg.id === 'number') this.answer(from, msg)
    else this.links.reportAbuse(from)
  }

  /**
   * The link to `peer` went down: its outstanding requests fail now with
   * `ACTORMESH_PEER_UNREACHABLE` (their outcome is unknown) instead of waiting for the timeout.
   */
  peerDown(peer: string): void {
    for (const [id, p] of this.pending) {
      if (p.peer !== peer) continue
      this.settle(
        id,
        undefined,
        new RpcError(
          'ACTORMESH_PEER_UNREACHABLE',
          `Lost the connection to ${peer}; the request's outcome is unknown`,
        ),
      )
    }
  }

  /** Fails every outstanding request and stops serving. */
  close(): void {
    this.shutdown.abort(new RpcError('ACTORMESH_RPC_CLOSED', 'The node is closing'))
    for (const id of [...this.pending.keys()])
      this.settle(id, undefined, new RpcError('ACTORMESH_RPC_CLOSED', 'The node is closing'))
  }

  private answer(from: string, msg: Extract<Wire, { k: 'r' }>): void {
    const p = this.pending.get(msg.id)
    if (!p || p.peer !== from) return // late answer after a timeout, or not for us
    if (msg.ok) this.settle(msg.id, msg.v)
    else this.settle(msg.id, undefined, new RpcError(String(msg.c), String(msg.e), msg.d ?? {}))
  }

  private settle(id: number, value: unknown, error?: Error): void {
    const p = this.pending.get(id)
    if (!p) return
    this.pending.delete(id)
    clearTimeout(p.timer)
    if (error) p.reject(error)
    else p.resolve(value)
  }

  private async serve(from: string, msg: Extract<Wire, { k: 'q' }>): Promise<void> {
    const handler = this.handlers.get(msg.m)
    if (!handler) {
      this.write(from, {
        k: 'r',
        id: msg.id,
        ok: false,
        c: 'ACTORMESH_RPC_UNKNOWN_METHOD',
        e: `No RPC method '${msg.m}'`,
      })
      return
    }
    if (this.serving >= this.servingRequestsMax) {
      this.write(from, {
        k: 'r',
        id: msg.id,
        ok: false,
        c: 'ACTORMESH_RPC_BUSY',
        e: 'Too many requests in progress',
      })
      return
    }
    this.serving++
    try {
      const v = await handler(from, msg.p, this.shutdown.signal)
      this.write(from, { k: 'r', id: msg.id, ok: true, v })
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown; details?: unknown }
      const code = typeof err.code === 'string' ? err.code : 'ACTORMESH_RPC_FAILED'
      const details =
        typeof err.details === 'object' && err.details !== null
          ? (err.details as Record<string, unknown>)
          : undefined
      this.write(from, {
        k: 'r',
        id: msg.id,
        ok: false,
        c: code,
        e: String(err.message ?? e),
        ...(details ? { d: details } : {}),
      })
    } finally {
      this.serving--
    }
  }

  private write(peer: string, msg: Wire): boolean {
    const body = packr.pack(msg)
    const bytes = new Uint8Array(body.byteLength + 1)
    bytes[0] = Channel.Rpc
    bytes.set(body, 1)
    try {
      return this.links.send(peer, bytes)
    } catch {
      return false
    }
  }
}
