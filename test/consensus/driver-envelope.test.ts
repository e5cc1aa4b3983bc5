import { describe, expect, it } from 'vitest'
import { ENVELOPE_BYTES, Incarnation, unwrap } from '../../consensus/driver/envelope.js'
import { seededRandom } from './harness.js'

const SEED = Number(process.env.SEED ?? 99)

describe('driver envelope', () => {
  it('recognises its own proposals and hands the state machine the payload only', () => {
    const inc = new Incarnation(seededRandom(SEED))
    const payload = new Uint8Array([9, 8, 7])
    const data = inc.wrap(0xfffffffe, payload)
    expect(data.byteLength).toBe(ENVELOPE_BYTES + 3)
    expect(inc.ownSeq(data)).toBe(0xfffffffe)
    expect([...unwrap(data)]).toEqual([9, 8, 7])
  })

  it('never matches the tags of another incarnation (a restart or another node)', () => {
    const before = new Incarnation(seededRandom(SEED), new Uint8Array([1, 1, 1, 1, 1, 1, 1, 1]))
    const after = new Incarnation(seededRandom(SEED), new Uint8Array([1, 1, 1, 1, 1, 1, 1, 2]))
    expect(after.ownSeq(before.wrap(5, new Uint8Array([1])))).toBe(-1)
    expect(after.readSeq(before.readContext(5))).toBe(-1)
    expect(before.readSeq(before.readContext(5))).toBe(5)
  })

  it('keeps envelopes carved from one slab independent of each other', () => {
    const inc = new Incarnation(seededRandom(SEED))
    const wrapped = Array.from({ length: 2000 }, (_, i) => inc.wrap(i, new Uint8Array(100).fill(i & 0xff)))
    wrapped.forEach((d, i) => {
      expect(inc.ownSeq(d)).toBe(i)
      expect(unwrap(d).every((b) => b === (i & 0xff))).toBe(true)
    })
  })

  it('rejects an incarnation that is not 8 bytes', () => {
    expect(() => new Incarnation(seededRandom(SEED), new Uint8Array(4))).toThrow(RangeError)
  })
})
