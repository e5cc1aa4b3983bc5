import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { applyToConf } from '../../consensus/confchange.js'
import {
  AssertionError,
  type ConfChange,
  ConfChangeType,
  decodeConfChange,
  encodeConfChange,
} from '../../consensus/index.js'

const SEED = 20_251_123
const changeTypes = [ConfChangeType.AddNode, ConfChangeType.RemoveNode, ConfChangeType.AddLearner]

const arbChange: fc.Arbitrary<ConfChange> = fc.record(
  {
    type: fc.constantFrom(...changeTypes),
    node: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }),
    context: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  },
  { requiredKeys: ['type', 'node'] },
)

describe('conf change encoding', () => {
  it('encodeConfChange then decodeConfChange returns the same change for any type, node id and context', () => {
    fc.assert(
      fc.property(arbChange, (cc) => {
        expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc)
      }),
      { seed: SEED, numRuns: 500 },
    )
  })

  it('decodeConfChange reads a change from a subarray of a larger buffer', () => {
    const encoded = encodeConfChange({ type: ConfChangeType.AddLearner, node: 'peer-1' })
    const framed = new Uint8Array(encoded.byteLength + 4)
    framed.set(encoded, 2)
    const view = framed.subarray(2, 2 + encoded.byteLength)
    expect(decodeConfChange(view)).toEqual({ type: ConfChangeType.AddLearner, node: 'peer-1' })
  })

  it('decodeConfChange throws TypeError when the entry is shorter than its header', () => {
    for (const data of [new Uint8Array(), new Uint8Array([0]), new Uint8Array([0, 0])]) {
      expect(() => decodeConfChange(data)).toThrow(TypeError)
    }
  })

  it('decodeConfChange throws TypeError when the type byte is unknown', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 255 }), (type) => {
        expect(() => decodeConfChange(new Uint8Array([type, 0, 1, 0x61]))).toThrow(TypeError)
      }),
      { seed: SEED },
    )
  })

  it('decodeConfChange throws TypeError when the node id is truncated', () => {
    expect(() => decodeConfChange(new Uint8Array([0, 0, 5, 0x61, 0x62]))).toThrow(/truncated/)
  })

  it('decodeConfChange throws TypeError when the node id is not valid UTF-8', () => {
    expect(() => decodeConfChange(new Uint8Array([0, 0, 2, 0xff, 0xfe]))).toThrow(TypeError)
  })

  it('decodeConfChange never throws anything but TypeError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (data) => {
        try {
          const cc = decodeConfChange(data)
          expect(changeTypes).toContain(cc.type)
        } catch (e) {
          expect(e).toBeInstanceOf(TypeError)
        }
      }),
      { seed: SEED, numRuns: 1000 },
    )
  })

  it('encodeConfChange throws RangeError when the node id exceeds 65535 bytes', () => {
    expect(() => encodeConfChange({ type: ConfChangeType.AddNode, node: 'x'.repeat(65_536) })).toThrow(
      RangeError,
    )
  })
})

describe('applying conf changes (one server at a time)', () => {
  const conf = { voters: ['a', 'b', 'c'], learners: ['d'] }

  it('AddNode adds a voter, or promotes a learner to a voter', () => {
    expect(applyToConf(conf, { type: ConfChangeType.AddNode, node: 'e' })).toEqual({
      voters: ['a', 'b', 'c', 'e'],
      learners: ['d'],
    })
    expect(applyToConf(conf, { type: ConfChangeType.AddNode, node: 'd' })).toEqual({
      voters: ['a', 'b', 'c', 'd'],
      learners: [],
    })
  })

  it('AddLearner adds a learner, or demotes a voter to a learner', () => {
    expect(applyToConf(conf, { type: ConfChangeType.AddLearner, node: 'b' })).toEqual({
      voters: ['a', 'c'],
      learners: ['b', 'd'],
    })
  })

  it('RemoveNode removes a voter or a learner, and is a no-op for a non-member', () => {
    expect(applyToConf(conf, { type: ConfChangeType.RemoveNode, node: 'a' })).toEqual({
      voters: ['b', 'c'],
      learners: ['d'],
    })
    expect(applyToConf(conf, { type: ConfChangeType.RemoveNode, node: 'd' }).learners).toEqual([])
    expect(applyToConf(conf, { type: ConfChangeType.RemoveNode, node: 'z' })).toEqual(conf)
  })

  it('applying any change leaves no node both voter and learner and never duplicates a member', () => {
    const arbId = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f')
    fc.assert(
      fc.property(fc.array(fc.record({ type: fc.constantFrom(...changeTypes), node: arbId })), (changes) => {
        let c = { voters: ['a'], learners: [] as string[] }
        for (const cc of changes) c = applyToConf(c, cc)
        const all = [...c.voters, ...c.learners]
        expect(new Set(all).size).toBe(all.length)
      }),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('applyToConf asserts that the change names a node', () => {
    expect(() => applyToConf(conf, { type: ConfChangeType.AddNode, node: '' })).toThrow(AssertionError)
  })
})
