/**
 * Collects one turn's outgoing messages per peer and sends them as one frame per peer (more only
 * when a frame would exceed `frameBytesMax`). Plain heartbeat answers are held back until the next
 * frame to that peer or the next tick's flush: that is what lets an idle cluster exchange one frame
 * per directed peer pair per heartbeat interval, however many groups it hosts.
 */
import type { Frame, GroupMessage, Transport } from '../transport.js'
import { type Message, MessageType, type NodeId } from '../types.js'

/** A conservative estimate of a message's encoded size (msgpack adds little beyond payloads). */
export function messageBytes(group: string, m: Message): number {
  let bytes = 96 + group.length + m.to.length + m.from.length
  for (const e of m.entries) bytes += e.data.byteLength + 24
  if (m.context) bytes += m.context.byteLength
  if (m.snapshot) {
    const conf = m.snapshot.meta.conf
    bytes += m.snapshot.data.byteLength + 64
    for (const id of conf.voters) bytes += id.length + 2
    for (const id of conf.learners) bytes += id.length + 2
  }
  return bytes
}

/** Whether a message may wait for the next frame: a heartbeat answer that carries no read. */
export function deferrable(m: Message): boolean {
  return m.type === MessageType.HeartbeatResp && m.context === undefined
}

interface PeerQueue {
  messages: GroupMessage[]
  bytes: number
}

/** Per-peer queues for one driver. Bounded: deferred answers are flushed once `deferredMax` wait. */
export class Outbox {
  private readonly now = new Map<NodeId, PeerQueue>()
  private readonly deferred = new Map<NodeId, PeerQueue>()
  framesSent = 0
  messagesSent = 0

  constructor(
    private readonly transport: Transport,
    private readonly frameBytesMax: number,
    private readonly deferredMax: number,
  ) {}

  add(group: string, m: Message): void {
    const queues = deferrable(m) ? this.deferred : this.now
    let q = queues.get(m.to)
    if (!q) {
      q = { messages: [], bytes: 0 }
      queues.set(m.to, q)
    }
    q.messages.push({ group, message: m })
    q.bytes += messageBytes(group, m)
    // Bound what waits: a flood of heartbeat answers goes with this turn's frames instead.
    if (queues === this.deferred && q.messages.length >= this.deferredMax) {
      this.deferred.delete(m.to)
      this.mergeInto(m.to, q)
    }
  }

  /**
   * Sends every queued message: one frame per peer (split at `frameBytesMax`). Deferred answers go
   * along with any frame to their peer; with `flushDeferred` (a tick) they go on their own too.
   */
  flush(flushDeferred: boolean): void {
    for (const [peer, q] of this.deferred) {
      if (!flushDeferred && !this.now.has(peer)) continue
      this.deferred.delete(peer)
      this.mergeInto(peer, q)
    }
    for (const [peer, q] of this.now) {
      if (q.bytes <= this.frameBytesMax) this.send(peer, { messages: q.messages })
      else this.sendSplit(peer, q.messages)
    }
    this.now.clear()
  }

  /** Drops whatever waits (the driver is closing). */
  clear(): void {
    this.now.clear()
    this.deferred.clear()
  }

  private mergeInto(peer: NodeId, q: PeerQueue): void {
    const target = this.now.get(peer)
    if (!target) {
      this.now.set(peer, q)
      return
    }
    for (const gm of q.messages) target.messages.push(gm)
    target.bytes += q.bytes
  }

  private sendSplit(peer: NodeId, messages: GroupMessage[]): void {
    let frame: Frame = { messages: [] }
    let bytes = 0
    for (const gm of messages) {
      const size = messageBytes(gm.group, gm.message)
      // A single message over the limit still goes, alone: Raft bounds messages by maxMessageBytes.
      if (bytes + size > this.frameBytesMax && frame.messages.length > 0) {
        this.send(peer, frame)
        frame = { messages: [] }
        bytes = 0
      }
      frame.messages.push(gm)
      bytes += size
    }
    if (frame.messages.length > 0) this.send(peer, frame)
  }

  private send(peer: NodeId, frame: Frame): void {
    this.framesSent++
    this.messagesSent += frame.messages.length
    this.transport.send(peer, frame)
  }
}
