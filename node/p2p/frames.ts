/**
 * The byte format of a link stream: frames back to back, each preceded by its length as an
 * unsigned LEB128 varint (what `lpStream` of `@libp2p/utils` writes and reads).
 *
 * Links read with `FrameReader` instead of `lpStream`: it splits every chunk the stream delivers
 * into frames right in the stream's `message` event, where `lpStream` makes one awaited read per
 * frame over a buffer list whose varint decoding looks bytes up one by one through the list. At
 * 256 clients that read path was ~2.5% of a node's CPU.
 */
import type { Uint8ArrayList } from 'uint8arraylist'

/** Bytes of `n` as an unsigned LEB128 varint. */
function varintLength(n: number): number {
  let bytes = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    bytes++
  }
  return bytes
}

/** Each of `frames` preceded by its length as an unsigned LEB128 varint, back to back. */
export function lengthPrefixedAll(frames: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const f of frames) total += varintLength(f.byteLength) + f.byteLength
  const out = new Uint8Array(total)
  let at = 0
  for (const f of frames) {
    let n = f.byteLength
    do {
      let b = n & 0x7f
      n = Math.floor(n / 128)
      if (n > 0) b |= 0x80
      out[at++] = b
    } while (n > 0)
    out.set(f, at)
    at += f.byteLength
  }
  return out
}

/** Varint bytes that can hold any length up to 2^35: more is a corrupt stream. */
const LENGTH_BYTES_MAX = 5

/**
 * Splits a byte stream into length-prefixed frames as its chunks arrive, calling `onFrame` for
 * each whole frame, in order. It holds at most one partial frame (so at most `frameBytesMax` plus
 * its length and one chunk); a length over `frameBytesMax`, or a varint longer than 5 bytes,
 * throws `RangeError` from `push`, and the stream must then be given up.
 */
export class FrameReader {
  private readonly chunks: Uint8Array[] = []
  /** Bytes in `chunks`. */
  private bytes = 0
  /** Length of the frame being read (after its varint was consumed), or -1 before its varint. */
  private pending = -1

  constructor(
    private readonly frameBytesMax: number,
    private readonly onFrame: (frame: Uint8Array) => void,
  ) {}

  /** Bytes held for a frame not yet whole. */
  get bufferedBytes(): number {
    return this.bytes
  }

  push(data: Uint8Array | Uint8ArrayList): void {
    if (data instanceof Uint8Array) this.add(data)
    else for (const chunk of data) this.add(chunk)
    for (;;) {
      if (this.pending < 0) {
        const length = this.readLength()
        if (length === undefined) return
        this.pending = length
      }
      if (this.bytes < this.pending) return
      const frame = this.take(this.pending)
      this.pending = -1
      this.onFrame(frame)
    }
  }

  private add(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    this.chunks.push(chunk)
    this.bytes += chunk.byteLength
  }

  /** Consumes a whole varint and returns its value, or consumes nothing and returns undefined. */
  private readLength(): number | undefined {
    let value = 0
    let scale = 1
    let used = 0
    for (const chunk of this.chunks) {
      for (let i = 0; i < chunk.byteLength; i++) {
        const b = chunk[i]!
        value += (b & 0x7f) * scale
        used++
        if (b < 0x80) {
          if (value > this.frameBytesMax) {
            throw new RangeError(`Cannot read a ${value}-byte frame: frameBytesMax is ${this.frameBytesMax}`)
          }
          this.skip(used)
          return value
        }
        if (used === LENGTH_BYTES_MAX) throw new RangeError('Cannot read a frame length: varint over 5 bytes')
        scale *= 128
      }
    }
    return undefined
  }

  private skip(n: number): void {
    this.bytes -= n
    while (n > 0) {
      const head = this.chunks[0]!
      if (head.byteLength > n) {
        this.chunks[0] = head.subarray(n)
        return
      }
      n -= head.byteLength
      this.chunks.shift()
    }
  }

  /** The next `n` bytes: a view of the head chunk when it holds them all, else a copy. */
  private take(n: number): Uint8Array {
    const head = this.chunks[0]
    if (n === 0) return new Uint8Array(0)
    if (head!.byteLength >= n) {
      const frame = head!.subarray(0, n)
      this.skip(n)
      return frame
    }
    const frame = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const chunk = this.chunks[0]!
      const part = Math.min(chunk.byteLength, n - at)
      frame.set(chunk.subarray(0, part), at)
      at += part
      this.skip(part)
    }
    return frame
  }
}
