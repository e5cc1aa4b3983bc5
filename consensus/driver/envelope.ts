/**
 * The driver's envelope around a proposal's payload. Proposals from a follower are forwarded to the
 * leader, so their log index is unknown when they are made; the envelope carries a tag — this
 * driver's random incarnation and a per-group sequence number — so that the proposer recognises its
 * own entry when it commits, whichever node appended it. The state machine never sees the envelope.
 *
 * Layout: version byte (1), incarnation (8 bytes), sequence (uint32 little endian), payload.
 * Read contexts use the same 12-byte tag without the version byte or payload.
 */
import type { RandomInt } from '../types.js'

const VERSION = 1
/** Bytes the envelope adds before the payload. */
export const ENVELOPE_BYTES = 13
const TAG_BYTES = 12
/** Slab that small envelopes share; a slab stays alive while any entry in it does. */
const SLAB_BYTES = 64 * 1024
/** Envelopes larger than this get their own buffer. */
const SLAB_ITEM_BYTES_MAX = 1024

/** A driver's incarnation: random, so that tags from before a restart never match new requests. */
export class Incarnation {
  readonly bytes = new Uint8Array(8)
  private readonly hi: number
  private readonly lo: number

  constructor(random: RandomInt, given?: Uint8Array) {
    const view = new DataView(this.bytes.buffer)
    if (given) {
      if (given.byteLength !== 8)
        throw new RangeError(`Cannot use incarnation of ${given.byteLength} bytes: it must be 8 bytes`)
      this.bytes.set(given)
    } else {
      view.setUint32(0, random(0x1_0000_0000))
      view.setUint32(4, random(0x1_0000_0000))
    }
    this.hi = view.getUint32(0)
    this.lo = view.getUint32(4)
  }

  /** Whether `data[offset ..]` starts with this incarnation. */
  matches(data: Uint8Array, offset: number): boolean {
    if (data.byteLength < offset + 8) return false
    const hi =
      ((data[offset]! << 24) | (data[offset + 1]! << 16) | (data[offset + 2]! << 8) | data[offset + 3]!) >>> 0
    if (hi !== this.hi) return false
    const lo =
      ((data[offset + 4]! << 24) |
        (data[offset + 5]! << 16) |
        (data[offset + 6]! << 8) |
        data[offset + 7]!) >>>
      0
    return lo === this.lo
  }

  private slab = new Uint8Array(0)
  private slabUsed = 0

  /**
   * Wraps `payload` for `propose`. Small envelopes are carved out of a shared slab: allocating a
   * fresh ArrayBuffer per proposal was the driver's hottest line in the throughput benchmark.
   */
  wrap(seq: number, payload: Uint8Array): Uint8Array {
    const size = ENVELOPE_BYTES + payload.byteLength
    let out: Uint8Array
    if (size > SLAB_ITEM_BYTES_MAX) out = new Uint8Array(size)
    else {
      if (this.slabUsed + size > this.slab.byteLength) {
        this.slab = new Uint8Array(SLAB_BYTES)
        this.slabUsed = 0
      }
      out = new Uint8Array(this.slab.buffer, this.slabUsed, size)
      this.slabUsed += size
    }
    out[0] = VERSION
    out.set(this.bytes, 1)
    writeSeq(out, 9, seq)
    out.set(payload, ENVELOPE_BYTES)
    return out
  }

  /** The sequence number of an enveloped entry this incarnation proposed, or -1. */
  ownSeq(data: Uint8Array): number {
    if (data.byteLength < ENVELOPE_BYTES || data[0] !== VERSION || !this.matches(data, 1)) return -1
    return readSeq(data, 9)
  }

  /** A read context: the tag alone. Unique across nodes, so the leader never mixes two reads up. */
  readContext(seq: number): Uint8Array {
    const out = new Uint8Array(TAG_BYTES)
    out.set(this.bytes, 0)
    writeSeq(out, 8, seq)
    return out
  }

  /** The sequence number of a read context this incarnation made, or -1. */
  readSeq(context: Uint8Array): number {
    if (context.byteLength !== TAG_BYTES || !this.matches(context, 0)) return -1
    return readSeq(context, 8)
  }
}

/** The payload of an enveloped entry (a view, no copy); data without an envelope is returned as is. */
export function unwrap(data: Uint8Array): Uint8Array {
  if (data.byteLength < ENVELOPE_BYTES || data[0] !== VERSION) return data
  return new Uint8Array(data.buffer, data.byteOffset + ENVELOPE_BYTES, data.byteLength - ENVELOPE_BYTES)
}

function writeSeq(out: Uint8Array, at: number, seq: number): void {
  out[at] = seq & 0xff
  out[at + 1] = (seq >>> 8) & 0xff
  out[at + 2] = (seq >>> 16) & 0xff
  out[at + 3] = (seq >>> 24) & 0xff
}

function readSeq(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0
}
