/**
 * How the multi-Raft driver talks to its peers. A transport moves frames: one frame carries every
 * message one node has for one peer in one driver turn, for every group at once, so that thousands
 * of groups cost one write per peer pair instead of thousands. A frame is a plain object that
 * msgpackr encodes as is (strings, numbers, booleans, arrays and `Uint8Array`s only), which is what
 * the libp2p transport puts on its long-lived stream per peer pair.
 */
import type { Message, NodeId } from './types.js'

/** One Raft message and the group (namespace) it belongs to. */
export interface GroupMessage {
  group: string
  message: Message
}

/** Everything one node sends one peer in one turn (or a part of it, see `frameBytesMax`). */
export interface Frame {
  messages: GroupMessage[]
}

/** What a transport calls back into: the driver's receiving side. */
export interface TransportHandler {
  /** A frame arrived from `from`. Called asynchronously, never from inside `send`. */
  onFrame(from: NodeId, frame: Frame): void
  /**
   * `peer` could not be reached (no connection, a send failed or a send queue is full). The frame
   * was dropped; Raft retransmits, and leaders slow down to probing that peer.
   */
  onUnreachable(peer: NodeId): void
}

/**
 * A node's connection to its peers. `send` is fire and forget: Raft tolerates lost messages, so a
 * transport drops (and reports `onUnreachable`) rather than queueing without bound.
 */
export interface Transport {
  /** Starts delivering incoming frames to `handler`. Called once, by the driver. */
  listen(handler: TransportHandler): void
  /** Queues `frame` for `peer`. Must not call back into the handler synchronously. */
  send(peer: NodeId, frame: Frame): void
  /** Stops delivering frames; frames still queued are dropped. */
  close(): Promise<void>
}
