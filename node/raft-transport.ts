import { Packr } from 'msgpackr'
import {
  type Frame,
  type GroupMessage,
  MessageType,
  type Transport,
  type TransportHandler,
} from '../consensus/index.js'
import type { PeerLinks } from './p2p/links.js'

/** First byte of every link frame: which subsystem it belongs to. */
export const Channel = {
  Raft: 0,
  Rpc: 1,
} as const

const packr = new Packr({ useRecords: false, moreTypes: false })

/** Names longer than this are not ActorMesh groups (namespace names are at most 63 bytes). */
const groupNameCharsMax = 128
const nodeIdCharsMax = 128

/** Counters for metrics and tests. */
export interface RaftTransportCounters {
  framesSent: number
  framesReceived: number
  /** Frames that failed to decode or validate: dropped, reported to the link as abuse. */
  framesRejected: number
}

/**
 * The multi-Raft driver's transport over the peer links: one link frame per driver frame, encoded
 * with msgpack behind a channel byte. Every incoming frame is validated field by field before the
 * driver sees it — the Raft core trusts its inputs, so a malformed or hostile frame must never
 * reach it.
 */
export class LinkRaftTransport implements Transport {
  readonly counters: RaftTransportCounters = { framesSent: 0, framesReceived: 0, framesRejected: 0 }
  private handler: TransportHandler | undefined
  private closed = false

  constructor(private readonly links: PeerLinks) {}

  listen(handler: TransportHandler): void {
    this.handler = handler
  }

  send(peer: string, frame: Frame): void {
    if (this.closed) return
    const body = packr.pack(frame)
    const bytes = new Uint8Array(body.byteLength + 1)
    bytes[0] = Channel.Raft
    bytes.set(body, 1)
    let sent = false
    try {
      sent = this.links.send(peer, bytes)
    } catch {
      sent = false // over frameBytesMax: the driver splits frames below the link's limit
    }
    if (sent) this.counters.framesSent++
    else {
      const handler = this.handler
      // Never call back synchronously from inside send (the Transport contract).
      if (handler) queueMicrotask(() => handler.onUnreachable(peer))
    }
  }

  /** Feeds one link frame of the Raft channel (without its channel byte). */
  receive(from: string, body: Uint8Array): void {
    if (this.closed || !this.handler) return
    let frame: Frame | undefined
    try {
      frame = validateFrame(packr.unpack(body), from)
    } catch {
      frame = undefined
    }
    if (!frame) {
      this.counters.framesRejected++
      this.links.reportAbuse(from)
      return
    }
    this.counters.framesReceived++
    this.handler.onFrame(from, frame)
  }

  async close(): Promise<void> {
    this.closed = true
    this.handler = undefined
  }
}

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isId = (v: unknown): v is string => typeof v === 'string' && v.length <= nodeIdCharsMax
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array
const messageTypes = new Set<number>(Object.values(MessageType))
/** Types that only ever arise locally and must never arrive from a peer. */
const localOnly = new Set<number>([
  MessageType.Hup,
  MessageType.Beat,
  MessageType.SnapStatus,
  MessageType.Unreachable,
])

/** Returns the frame if every field has the right type and range, else undefined. */
export function validateFrame(value: unknown, from: string): Frame | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const messages = (value as { messages?: unknown }).messages
  if (!Array.isArray(messages)) return undefined
  for (const gm of messages) {
    if (!validGroupMessage(gm, from)) return undefined
  }
  return { messages: messages as GroupMessage[] }
}

function validGroupMessage(gm: unknown, from: string): boolean {
  if (typeof gm !== 'object' || gm === null) return false
  const { group, message } = gm as { group?: unknown; message?: unknown }
  if (typeof group !== 'string' || group.length === 0 || group.length > groupNameCharsMax) return false
  if (typeof message !== 'object' || message === null) return false
  const m = message as Record<string, unknown>
  if (typeof m.type !== 'number' || !messageTypes.has(m.type) || localOnly.has(m.type)) return false
  // A peer speaks only for itself, except when it forwards a transfer request, which names the
  // transferee as `from` (the Raft core's convention).
  if (!isId(m.from) || !isId(m.to)) return false
  if (m.from !== from && m.type !== MessageType.TransferLeader) return false
  for (const k of ['term', 'logTerm', 'index', 'commit', 'rejectHint'] as const)
    if (!isIndex(m[k])) return false
  if (typeof m.reject !== 'boolean') return false
  if (m.context !== undefined && !isBytes(m.context)) return false
  if (m.quiesce !== undefined && typeof m.quiesce !== 'boolean') return false
  if (!Array.isArray(m.entries) || !m.entries.every(validEntry)) return false
  if (m.snapshot !== undefined && !validSnapshot(m.snapshot)) return false
  if (m.type === MessageType.Snap && m.snapshot === undefined) return false
  return true
}

function validEntry(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false
  const x = e as Record<string, unknown>
  return isIndex(x.term) && isIndex(x.index) && (x.type === 0 || x.type === 1) && isBytes(x.data)
}

function validSnapshot(s: unknown): boolean {
  if (typeof s !== 'object' || s === null) return false
  const { meta, data } = s as { meta?: Record<string, unknown>; data?: unknown }
  if (!meta || !isBytes(data) || !isIndex(meta.index) || !isIndex(meta.term)) return false
  const conf = meta.conf as { voters?: unknown; learners?: unknown } | undefined
  return (
    !!conf &&
    Array.isArray(conf.voters) &&
    conf.voters.every(isId) &&
    Array.isArray(conf.learners) &&
    conf.learners.every(isId)
  )
}
