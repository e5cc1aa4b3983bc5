import fc from 'fast-check'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { FrameReader, lengthPrefixedAll } from '../../node/p2p/frames.js'

const SEED = 0x6672616d

/** Frames read back from `bytes` delivered in chunks cut at `cuts` (some as buffer lists). */
function readBack(bytes: Uint8Array, cuts: number[], frameBytesMax = 1 << 20): Uint8Array[] {
  const frames: Uint8Array[] = []
  const reader = new FrameReader(frameBytesMax, (f) => frames.push(Uint8Array.from(f)))
  const at = [
    0,
    ...[...new Set(cuts)].filter((c) => c > 0 && c < bytes.byteLength).sort((a, b) => a - b),
    bytes.byteLength,
  ]
  for (let i = 1; i < at.length; i++) {
    const chunk = bytes.subarray(at[i - 1], at[i])
    // Every other chunk arrives as a list of two buffers, as yamux hands them on.
    if (i % 2 === 0 && chunk.byteLength > 1)
      reader.push(new Uint8ArrayList(chunk.subarray(0, 1), chunk.subarray(1)))
    else reader.push(chunk)
  }
  expect(reader.bufferedBytes).toBe(0)
  return frames
}

describe('FrameReader', () => {
  it('reads back every frame, empty ones too, however the bytes are cut into chunks', () => {
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ minLength: 120, maxLength: 20_000 }),
    )
    fc.assert(
      fc.property(
        fc.array(frame, { maxLength: 12 }),
        fc.array(fc.nat(50_000), { maxLength: 30 }),
        (frames, cuts) => {
          const bytes = lengthPrefixedAll(frames)
          expect(readBack(bytes, cuts).map((f) => Buffer.from(f))).toEqual(frames.map((f) => Buffer.from(f)))
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('delivers a frame only once it is whole, with a length split over chunks', () => {
    const frames: Uint8Array[] = []
    const reader = new FrameReader(1 << 20, (f) => frames.push(f))
    const bytes = lengthPrefixedAll([new Uint8Array(300).fill(7)]) // a 2-byte length
    reader.push(bytes.subarray(0, 1))
    reader.push(bytes.subarray(1, 200))
    expect(frames).toEqual([])
    expect(reader.bufferedBytes).toBe(198)
    reader.push(bytes.subarray(200))
    expect(frames.map((f) => f.byteLength)).toEqual([300])
  })

  it('refuses a length over frameBytesMax and a varint longer than 5 bytes', () => {
    const over = new FrameReader(100, () => {})
    expect(() => over.push(lengthPrefixedAll([new Uint8Array(101)]))).toThrow(RangeError)
    const endless = new FrameReader(1 << 20, () => {})
    expect(() => endless.push(new Uint8Array(6).fill(0x80))).toThrow(RangeError)
    // A length exactly at the limit is fine.
    const frames: Uint8Array[] = []
    new FrameReader(100, (f) => frames.push(f)).push(lengthPrefixedAll([new Uint8Array(100)]))
    expect(frames).toHaveLength(1)
  })
})
