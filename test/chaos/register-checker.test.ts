import { describe, expect, it } from 'vitest'
import {
  checkRegister,
  cutAt,
  linearizable,
  minimalViolation,
  type Operation,
  registerModel,
  weaken,
} from '../../chaos/check/index.js'
import { bruteForce, cas, op, r, w } from './histories.js'

const check = (ops: Operation[]) => linearizable(registerModel, ops)

describe('register linearizability: hand-written histories', () => {
  it('accepts a sequential write then read of the written value', () => {
    expect(check([w('a', 0, 1), r('a', 2, 3)])).toBe('ok')
  })

  it('accepts a read of null before any write', () => {
    expect(check([r(null, 0, 1), w('a', 2, 3), r('a', 4, 5)])).toBe('ok')
  })

  it('rejects a stale read after a later write completed', () => {
    expect(check([w('a', 0, 1), w('b', 2, 3), r('a', 4, 5)])).toBe('violation')
  })

  it('rejects a read of a value nobody wrote', () => {
    expect(check([w('a', 0, 1), r('z', 2, 3)])).toBe('violation')
  })

  it('accepts reads concurrent with a write seeing old then new', () => {
    expect(check([w('a', 0, 10), r(null, 1, 2), r('a', 3, 4)])).toBe('ok')
  })

  it('rejects a new-then-old inversion of reads during one write', () => {
    expect(check([w('a', 0, 10), r('a', 1, 2), r(null, 3, 4)])).toBe('violation')
  })

  it('accepts two concurrent writes taking effect in the opposite order of their calls', () => {
    expect(check([w('a', 0, 10), w('b', 1, 10), r('b', 2, 3), r('a', 4, 5), r('a', 11, 12)])).toBe('ok')
  })

  it('rejects two readers that see two concurrent writes in opposite orders', () => {
    const ops = [w('1', 0, 10), w('2', 0, 10), r('1', 1, 2), r('2', 3, 4), r('2', 5, 6), r('1', 7, 8)]
    expect(check(ops)).toBe('violation')
  })

  it('treats ops touching at one instant as concurrent', () => {
    // The read returns at 5, the write is invoked at 5: either order is allowed.
    expect(check([r('a', 0, 5), w('a', 5, 6)])).toBe('ok')
  })

  it('accepts a write of unknown outcome that a later read saw', () => {
    expect(check([w('a', 0), r('a', 5, 6)])).toBe('ok')
  })

  it('accepts a write of unknown outcome that never took effect', () => {
    expect(check([w('a', 0), r(null, 5, 6), r(null, 7, 8)])).toBe('ok')
  })

  it('rejects losing a value of unknown outcome after it was seen', () => {
    expect(check([w('a', 0), r('a', 5, 6), r(null, 7, 8)])).toBe('violation')
  })

  it('rejects a read seeing a write of unknown outcome before the write was invoked', () => {
    expect(check([r('a', 0, 1), w('a', 2)])).toBe('violation')
  })

  it('ignores a write that certainly failed, and rejects a read that saw it', () => {
    const failed = { ...w('a', 0, 1), status: 'fail' as const }
    expect(check([failed, r(null, 2, 3)])).toBe('ok')
    expect(check([failed, r('a', 2, 3)])).toBe('violation')
  })

  it('rejects two successful swaps from the same value', () => {
    expect(check([cas(null, 'a', true, null, 0, 10), cas(null, 'b', true, null, 1, 10)])).toBe('violation')
  })

  it('accepts a failed cas that reports the value it found', () => {
    expect(check([w('a', 0, 1), cas('b', 'c', false, 'a', 2, 3), r('a', 4, 5)])).toBe('ok')
  })

  it('rejects a failed cas that reports a value other than the current one', () => {
    expect(check([w('a', 0, 1), cas('b', 'c', false, null, 2, 3)])).toBe('violation')
  })

  it('rejects a failed cas whose expected value was in place', () => {
    expect(check([w('a', 0, 1), cas('a', 'c', false, 'a', 2, 3)])).toBe('violation')
  })

  it('accepts a cas of unknown outcome seen by a read, and rejects the old value coming back', () => {
    const base = [w('a', 0, 1), cas('a', 'b', true, null, 2), r('b', 10, 11)]
    expect(check(base)).toBe('ok')
    expect(check([...base, r('a', 12, 13)])).toBe('violation')
  })

  it('accepts a cas of unknown outcome that failed because another write came first', () => {
    // The cas may run after w(c): it fails then, and leaves c in place.
    expect(check([w('a', 0, 1), cas('a', 'b', true, null, 2), w('c', 3, 4), r('c', 20, 21)])).toBe('ok')
  })

  it('rejects the same unknown write explaining two separate reappearances', () => {
    // 'a' comes back once through the unknown write; it cannot come back a second time.
    const ops = [w('a', 0, 1), w('a', 2), w('b', 3, 4), r('a', 5, 6), w('c', 7, 8), r('a', 9, 10)]
    expect(check(ops)).toBe('violation')
  })

  it('checks each key on its own', () => {
    const ops = [
      { ...w('a', 0, 1), key: 'k1' },
      { ...w('b', 0, 1), key: 'k2' },
      { ...r('a', 2, 3), key: 'k1' },
      { ...r('a', 2, 3), key: 'k2' },
    ]
    const results = checkRegister(ops)
    expect(results.map((x) => [x.key, x.verdict])).toEqual([
      ['k1', 'ok'],
      ['k2', 'violation'],
    ])
    // k2 never held 'a': the read alone is the violation; the write of 'b' does not matter.
    expect(results[1]!.violation!.ops.map((o) => o.f)).toEqual(['read'])
  })

  it('answers unknown when the search budget runs out', () => {
    const ops = Array.from({ length: 12 }, (_, i) => w(`v${i}`, 0, 100)).concat([r('v0', 101, 102)])
    expect(linearizable(registerModel, ops, { stepsMax: 5 })).toBe('unknown')
  })
})

describe('register linearizability: the minimal violation', () => {
  it('names the two writes and the stale read, not the unrelated ops', () => {
    const ops = [
      r(null, 0, 1),
      w('a', 2, 3),
      r('a', 4, 5),
      w('b', 6, 7),
      r('a', 8, 9),
      w('c', 10, 11),
      r('c', 12, 13),
    ]
    const v = minimalViolation(registerModel, ops)!
    expect(v.ops.map((o) => o.id)).toEqual([ops[1]!.id, ops[3]!.id, ops[4]!.id])
    expect(v.at).toBe(9)
  })

  it('names both reads of an inversion, not the write they overlap', () => {
    // Even if the write's outcome were unknown, a then null cannot be explained.
    const ops = [w('a', 0, 10), r('a', 1, 2), r(null, 3, 4)]
    const v = minimalViolation(registerModel, ops)!
    expect(v.ops.map((o) => o.id)).toEqual([ops[1]!.id, ops[2]!.id])
    expect(v.at).toBe(4)
  })

  it('is undefined for a linearizable history', () => {
    expect(minimalViolation(registerModel, [w('a', 0, 1), r('a', 2, 3)])).toBeUndefined()
  })
})

describe('the search agrees with the definition', () => {
  it('on the hand-written cases above and their variants', () => {
    const cases: Operation[][] = [
      [w('1', 0, 10), w('2', 0, 10), r('1', 1, 2), r('2', 3, 4), r('2', 5, 6), r('1', 7, 8)],
      [w('a', 0), r('a', 5, 6), r(null, 7, 8)],
      [w('a', 0, 1), cas('a', 'b', true, null, 2), w('c', 3, 4), r('c', 20, 21)],
      [op('write', 'a', 'ok', 0, 5), r('a', 5, 6)],
    ]
    for (const c of cases) expect(check(c) === 'ok').toBe(bruteForce(registerModel, c))
  })

  it('weakening an op never turns a linearizable history into a violation', () => {
    const ops = [w('a', 0, 1), cas('a', 'b', true, null, 2, 3), r('b', 4, 5)]
    for (let i = 0; i < ops.length; i++) {
      const weak = ops.map((o, j) => (j === i ? weaken(o) : o))
      expect(check(weak)).toBe('ok')
    }
    expect(check(cutAt(ops, 2.5))).toBe('ok')
  })
})
