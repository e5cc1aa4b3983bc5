import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AssertionError, ProgressState } from '../../consensus/index.js'
import { Inflights, Progress } from '../../consensus/progress.js'

const SEED = 20_251_124

describe('Inflights', () => {
  it('Inflights is full after size adds and frees every append up to an acknowledged index', () => {
    const w = new Inflights(3)
    for (const i of [5, 7, 9]) w.add(i)
    expect(w.full()).toBe(true)
    w.freeLE(7)
    expect(w.count).toBe(1)
    expect(w.full()).toBe(false)
    w.freeLE(6) // stale acknowledgment: nothing to free
    expect(w.count).toBe(1)
  })

  it('Inflights wraps around its ring and keeps order', () => {
    const w = new Inflights(2)
    w.add(1)
    w.add(2)
    w.freeFirstOne()
    w.add(3)
    w.freeLE(2)
    expect(w.count).toBe(1)
    w.freeLE(3)
    expect(w.count).toBe(0)
    w.freeFirstOne() // on an empty window: no effect
    expect(w.count).toBe(0)
  })

  it('Inflights asserts when an append is added to a full window', () => {
    const w = new Inflights(1)
    w.add(1)
    expect(() => w.add(2)).toThrow(AssertionError)
  })

  it('Inflights behaves like a bounded FIFO of increasing indexes under any sequence of operations', () => {
    type Op = { kind: 'add' } | { kind: 'free'; upTo: number } | { kind: 'freeFirst' }
    const arbOp: fc.Arbitrary<Op> = fc.oneof(
      fc.constant<Op>({ kind: 'add' }),
      fc.integer({ min: 0, max: 60 }).map<Op>((upTo) => ({ kind: 'free', upTo })),
      fc.constant<Op>({ kind: 'freeFirst' }),
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(arbOp, { maxLength: 80 }), (size, ops) => {
        const w = new Inflights(size)
        let model: number[] = []
        let next = 1
        for (const op of ops) {
          if (op.kind === 'add') {
            if (model.length === size) continue
            w.add(next)
            model.push(next++)
          } else if (op.kind === 'free') {
            w.freeLE(op.upTo)
            model = model.filter((i) => i > op.upTo)
          } else {
            w.freeFirstOne()
            model = model.slice(1)
          }
          expect(w.count).toBe(model.length)
          expect(w.full()).toBe(model.length === size)
        }
      }),
      { seed: SEED, numRuns: 300 },
    )
  })
})

describe('Progress', () => {
  it('Progress.maybeUpdate moves match and next forward only', () => {
    const pr = new Progress(5, 4, false)
    expect(pr.maybeUpdate(3)).toBe(true)
    expect(pr).toMatchObject({ match: 3, next: 5 })
    expect(pr.maybeUpdate(2)).toBe(false)
    expect(pr).toMatchObject({ match: 3, next: 5 })
    expect(pr.maybeUpdate(7)).toBe(true)
    expect(pr).toMatchObject({ match: 7, next: 8 })
  })

  it('Progress in Probe ignores a stale rejection and otherwise backs next off to the hint, never below match + 1', () => {
    const pr = new Progress(10, 4, false)
    pr.match = 3
    expect(pr.maybeDecrTo(5, 2)).toBe(false) // we did not send index 5: stale
    expect(pr.next).toBe(10)
    expect(pr.maybeDecrTo(9, 6)).toBe(true)
    expect(pr.next).toBe(7)
    expect(pr.maybeDecrTo(6, 0)).toBe(true)
    expect(pr.next).toBe(4)
  })

  it('Progress in Replicate ignores a rejection at or below match and otherwise restarts from match + 1', () => {
    const pr = new Progress(1, 4, false)
    pr.maybeUpdate(5)
    pr.becomeReplicate()
    pr.next = 9
    expect(pr.maybeDecrTo(4, 0)).toBe(false)
    expect(pr.next).toBe(9)
    expect(pr.maybeDecrTo(8, 2)).toBe(true)
    expect(pr.next).toBe(6)
  })

  it('Progress pauses a prober after one append, a replicator on a full window, and always in Snapshot', () => {
    const pr = new Progress(1, 2, false)
    expect(pr.isPaused()).toBe(false)
    pr.probeSent = true
    expect(pr.isPaused()).toBe(true)
    pr.becomeReplicate()
    expect(pr.isPaused()).toBe(false)
    pr.inflights.add(1)
    pr.inflights.add(2)
    expect(pr.isPaused()).toBe(true)
    pr.becomeSnapshot(10)
    expect(pr.isPaused()).toBe(true)
    expect(pr.status()).toMatchObject({ state: ProgressState.Snapshot, inflight: 0 })
  })

  it('Progress leaving Snapshot state probes from after the snapshot, or after match if that is further', () => {
    const pr = new Progress(1, 2, false)
    pr.maybeUpdate(3)
    pr.becomeSnapshot(10)
    pr.becomeProbe()
    expect(pr).toMatchObject({ state: ProgressState.Probe, next: 11, pendingSnapshot: 0 })
    const ahead = new Progress(1, 2, false)
    ahead.becomeSnapshot(10)
    ahead.maybeUpdate(12)
    ahead.becomeProbe()
    expect(ahead.next).toBe(13)
  })

  it('Progress.becomeReplicate resets the window and sends from match + 1', () => {
    const pr = new Progress(9, 2, false)
    pr.maybeUpdate(4)
    pr.inflights.add(8)
    pr.becomeReplicate()
    expect(pr.status()).toMatchObject({ state: ProgressState.Replicate, next: 5, inflight: 0, match: 4 })
  })
})
