import type { Message, NodeId } from './types.js'

/** One pending ReadIndex request (thesis §6.4): served once a quorum confirms leadership. */
interface ReadRequest {
  index: number
  request: Message
  acks: Set<NodeId>
}

/** A request context as a map key; contexts are small opaque byte strings. */
export function contextKey(context: Uint8Array): string {
  let s = ''
  for (let i = 0; i < context.byteLength; i++) s += String.fromCharCode(context[i]!)
  return s
}

/**
 * Pending ReadIndex requests in arrival order. A heartbeat round carrying a request's context
 * confirms leadership for it and for every request queued before it.
 */
export class ReadOnly {
  private readonly pending = new Map<string, ReadRequest>()
  private queue: string[] = []

  get size(): number {
    return this.queue.length
  }

  has(context: Uint8Array): boolean {
    return this.pending.has(contextKey(context))
  }

  add(index: number, request: Message, self: NodeId): void {
    const key = contextKey(request.context!)
    if (this.pending.has(key)) return
    this.pending.set(key, { index, request, acks: new Set([self]) })
    this.queue.push(key)
  }

  /** Records `from`'s acknowledgment; returns the number of acknowledgments so far. */
  recvAck(from: NodeId, context: Uint8Array): number {
    const req = this.pending.get(contextKey(context))
    if (!req) return 0
    req.acks.add(from)
    return req.acks.size
  }

  acks(context: Uint8Array): Set<NodeId> | undefined {
    return this.pending.get(contextKey(context))?.acks
  }

  /** Removes and returns every request up to and including `context`, oldest first. */
  advance(context: Uint8Array): Array<{ index: number; request: Message }> {
    const key = contextKey(context)
    const at = this.queue.indexOf(key)
    if (at < 0) return []
    const done = this.queue.slice(0, at + 1)
    this.queue = this.queue.slice(at + 1)
    const out: Array<{ index: number; request: Message }> = []
    for (const k of done) {
      const req = this.pending.get(k)!
      this.pending.delete(k)
      out.push({ index: req.index, request: req.request })
    }
    return out
  }

  lastPendingContext(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1]
    return key === undefined ? undefined : this.pending.get(key)!.request.context
  }

  reset(): void {
    this.pending.clear()
    this.queue = []
  }
}
