import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkCounter, checkListAppend, type Operation, operations } from '../../chaos/check/index.js'
import { op, prng, toEvents } from './histories.js'

const SEED = Number(process.env.CHAOS_CHECK_SEED ?? 20_251_123)
console.log(`list/counter checker properties: seed ${SEED} (CHAOS_CHECK_SEED=${SEED} to replay)`)

const append = (v: string, length: number, call: number, ret?: number) =>
  op('append', v, String(length), call, ret)
const readList = (list: string[], call: number, ret?: number) => op('read', null, list, call, ret)
const kinds = (ops: Operation[]) => checkListAppend(ops).flatMap((k) => k.violations.map((v) => v.kind))

describe('list-append check: hand-written histories', () => {
  it('accepts appends all present in order, with an unknown one present or absent', () => {
    const base = [append('a', 1, 0, 1), append('b', 2, 2, 3), append('c', 3, 4), readList(['a', 'b'], 5, 6)]
    expect(kinds([...base, readList(['a', 'b'], 7, 8)])).toEqual([])
    expect(kinds([...base, readList(['a', 'b', 'c'], 7, 8)])).toEqual([])
  })

  it('reports an acknowledged append missing from the final list as lost', () => {
    const ops = [append('a', 1, 0, 1), append('b', 2, 2, 3), readList(['a'], 4, 5)]
    const [result] = checkListAppend(ops)
    expect(result!.violations.map((v) => [v.kind, v.ops])).toEqual([['lost', [ops[1]!.id, ops[2]!.id]]])
  })

  it('reports a value appearing twice', () => {
    expect(kinds([append('a', 1, 0, 1), readList(['a', 'a'], 2, 3)])).toContain('duplicate')
  })

  it('reports a value no append wrote, and one whose append certainly failed', () => {
    const failed = { ...append('b', 2, 2, 3), status: 'fail' as const, output: undefined }
    const found = kinds([append('a', 1, 0, 1), failed, readList(['a', 'z', 'b'], 4, 5)])
    expect(found).toContain('phantom')
    expect(found).toContain('failed-applied')
  })

  it('reports readers that disagree on the order', () => {
    const ops = [
      append('a', 1, 0, 10),
      append('b', 2, 0, 10),
      readList(['b'], 1, 2),
      readList(['a', 'b'], 11, 12),
    ]
    expect(kinds(ops)).toContain('order')
  })

  it('reports a read missing an append acknowledged before it began, even if the end has it', () => {
    const ops = [append('a', 1, 0, 1), readList([], 2, 3), readList(['a'], 4, 5)]
    expect(kinds(ops)).toEqual(['stale-read'])
  })

  it('reports a read shorter than one that ended before it began', () => {
    const ops = [append('a', 1, 0), readList(['a'], 2, 3), readList([], 4, 5), readList(['a'], 6, 7)]
    expect(kinds(ops)).toContain('non-monotonic')
  })

  it('reports an append whose answered length does not match its place', () => {
    const ops = [append('a', 2, 0, 1), append('b', 1, 0, 1), readList(['a', 'b'], 2, 3)]
    expect(kinds(ops)).toEqual(['position', 'position'])
  })

  it('accepts concurrent reads of different lengths while appends run', () => {
    const ops = [
      append('a', 1, 0, 10),
      append('b', 2, 0, 10),
      readList(['a'], 1, 11),
      readList([], 2, 3),
      readList(['a', 'b'], 12, 13),
    ]
    expect(kinds(ops)).toEqual([])
  })
})

describe('counter check: hand-written histories', () => {
  const add = (n: number, result: number, call: number, ret?: number) =>
    op('add', String(n), String(result), call, ret)
  const get = (v: number, call: number, ret: number) => op('read', null, String(v), call, ret)
  const found = (ops: Operation[]) => checkCounter(ops).flatMap((k) => k.violations.map((v) => v.kind))

  it('accepts a final value between acknowledged and attempted', () => {
    const ops = [add(1, 1, 0, 1), add(1, 2, 2), add(1, 2, 3, 4), get(3, 10, 11)]
    expect(found(ops)).toEqual([])
    expect(checkCounter(ops)[0]).toMatchObject({ acknowledged: 2, attempted: 3, final: 3 })
  })

  it('reports a final value below the acknowledged increments', () => {
    expect(found([add(1, 1, 0, 1), add(1, 2, 2, 3), get(1, 10, 11)])).toEqual(['final-out-of-bounds'])
  })

  it('reports a final value above the attempted increments', () => {
    expect(found([add(1, 1, 0, 1), get(2, 10, 11)])).toEqual(['final-out-of-bounds'])
  })

  it('does not count an add that certainly failed', () => {
    const failed = { ...add(5, 6, 2, 3), status: 'fail' as const }
    expect(found([add(1, 1, 0, 1), failed, get(6, 10, 11)])).toEqual(['final-out-of-bounds'])
  })

  it('reports a read during the run outside its bounds, and two adds with one result', () => {
    // The second add answered 1 although one add was acknowledged before it began: out of bounds too.
    const ops = [add(1, 1, 0, 1), get(0, 2, 3), add(1, 1, 4, 5), get(2, 6, 7)]
    const v = checkCounter(ops)[0]!.violations
    expect(v.map((x) => [x.kind, x.ops])).toEqual([
      ['out-of-bounds', [ops[1]!.id]],
      ['out-of-bounds', [ops[2]!.id]],
      ['duplicate-result', [ops[0]!.id, ops[2]!.id]],
    ])
  })
})

/** A list-append history from a sequential run with random windows; true to the model. */
function listHistory(seed: number, steps: number, window: number): Operation[] {
  const rnd = prng(seed)
  const list: string[] = []
  const ops: Operation[] = []
  for (let i = 0; i < steps; i++) {
    const t = 10 * i + 5
    const call = t - rnd(window + 1)
    const ret = t + rnd(window + 1)
    const roll = rnd(10)
    if (roll < 5) {
      const v = `v${i}`
      if (roll === 0) {
        // Never took effect: unknown (or certainly failed).
        ops.push(
          rnd(2) === 0
            ? op('append', v, undefined, call)
            : { ...op('append', v, undefined, call, ret), status: 'fail' },
        )
        continue
      }
      list.push(v)
      ops.push(
        roll === 1 ? op('append', v, undefined, call) : op('append', v, String(list.length), call, ret),
      )
    } else {
      ops.push(op('read', null, [...list], call, ret))
    }
  }
  ops.push(op('read', null, [...list], 10 * steps + window + 10, 10 * steps + window + 11))
  return operations(toEvents(ops))
}

describe('list-append check on generated histories', () => {
  it('accepts every history generated from the sequential model', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 0, max: 40 }),
        (seed, n, wnd) => {
          expect(kinds(listHistory(seed, n, wnd))).toEqual([])
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
  })

  it('rejects every generated history that loses, duplicates or reorders an acknowledged item', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 2, max: 60 }),
        fc.nat(),
        fc.constantFrom('lose', 'dup', 'swap'),
        (seed, n, pick, how) => {
          const ops = listHistory(seed, n, 20)
          const final = ops[ops.length - 1]!
          const list = final.output as string[]
          const acked = ops.filter((o) => o.f === 'append' && o.status === 'ok').map((o) => o.input as string)
          fc.pre(acked.length >= 2)
          const target = acked[pick % acked.length]!
          const at = list.indexOf(target)
          if (how === 'lose') list.splice(at, 1)
          else if (how === 'dup') list.push(target)
          else {
            const other = at === 0 ? 1 : at - 1
            ;[list[at], list[other]] = [list[other]!, list[at]!]
          }
          expect(kinds(ops).length).toBeGreaterThan(0)
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
  })
})

describe('counter check on generated histories', () => {
  const counterHistory = (seed: number, steps: number, window: number): Operation[] => {
    const rnd = prng(seed)
    let count = 0
    const ops: Operation[] = []
    for (let i = 0; i < steps; i++) {
      const t = 10 * i + 5
      const call = t - rnd(window + 1)
      const ret = t + rnd(window + 1)
      const roll = rnd(10)
      const n = 1 + rnd(3)
      if (roll === 0)
        ops.push(op('add', String(n), undefined, call)) // unknown, never applied
      else if (roll === 1) ops.push({ ...op('add', String(n), undefined, call, ret), status: 'fail' })
      else if (roll === 2) {
        count += n
        ops.push(op('add', String(n), undefined, call)) // unknown, applied
      } else if (roll < 7) {
        count += n
        ops.push(op('add', String(n), String(count), call, ret))
      } else ops.push(op('read', null, String(count), call, ret))
    }
    ops.push(op('read', null, String(count), 10 * steps + window + 10, 10 * steps + window + 11))
    return operations(toEvents(ops))
  }

  it('accepts every generated history and rejects it with the final value moved out of bounds', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 0, max: 40 }),
        (seed, n, wnd) => {
          const ops = counterHistory(seed, n, wnd)
          const [result] = checkCounter(ops)
          expect(result!.violations).toEqual([])
          const final = ops[ops.length - 1]!
          final.output = String(result!.attempted + 1)
          expect(checkCounter(ops)[0]!.violations.map((v) => v.kind)).toEqual(['final-out-of-bounds'])
          final.output = String(result!.acknowledged - 1)
          expect(checkCounter(ops)[0]!.violations.map((v) => v.kind)).toEqual(['final-out-of-bounds'])
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
  })
})
