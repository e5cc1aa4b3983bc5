/**
 * The compliance suite for `LogStore` (consensus/types.ts): `logStoreCompliance(name, harness)`
 * registers the contract tests; a durable store also gets the reopen-after-close tests.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  CompactedError,
  type ConfState,
  type GroupWrite,
  type LogStore,
  UnavailableError,
} from '../../consensus/index.js'
import { makeEntries } from './storage-compliance.js'

/** How the suite gets at one store under test. */
export interface LogStoreHarness {
  /** Opens the store; after `close()`, opens it again over the same state when durable. */
  open(): Promise<LogStore>
  /** Whether a reopened store keeps what the closed one persisted. */
  durable: boolean
  /** Removes everything the harness created. */
  cleanup(): Promise<void>
}

const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] }
const all = Number.POSITIVE_INFINITY

/** Registers the `LogStore` contract tests for one implementation. */
export function logStoreCompliance(name: string, makeHarness: () => Promise<LogStoreHarness>): void {
  describe(`LogStore compliance: ${name}`, () => {
    let harness: LogStoreHarness | undefined
    let store: LogStore | undefined
    const start = async (): Promise<LogStore> => {
      harness = await makeHarness()
      store = await harness.open()
      return store
    }
    const reopen = async (): Promise<LogStore> => {
      await store!.close()
      store = await harness!.open()
      return store
    }
    afterEach(async () => {
      await store?.close()
      await harness?.cleanup()
      store = undefined
      harness = undefined
    })

    it('opens a new group empty with its bootstrap membership and lists it', async () => {
      const s = await start()
      const view = s.open('g1', conf)
      expect(view.firstIndex()).toBe(1)
      expect(view.lastIndex()).toBe(0)
      expect(view.initialState().confState).toEqual(conf)
      expect(s.groups()).toContain('g1')
      const again = s.open('g1', { voters: ['x'], learners: [] })
      expect(again.initialState().confState).toEqual(conf) // bootstrap ignored for an existing group
    })

    it('persists many groups in one batch and the views reflect it when persist resolves', async () => {
      const s = await start()
      const views = ['a', 'b', 'c'].map((g) => s.open(g, conf))
      const batch: GroupWrite[] = ['a', 'b', 'c'].map((g, i) => ({
        group: g,
        hardState: { term: i + 1, vote: 'n1', commit: i },
        entries: makeEntries(1, 4 + i, i + 1),
      }))
      await s.persist(batch)
      views.forEach((v, i) => {
        expect(v.lastIndex()).toBe(3 + i)
        expect(v.term(1)).toBe(i + 1)
        expect(v.initialState().hardState).toEqual({ term: i + 1, vote: 'n1', commit: i })
        expect(v.entries(1, v.lastIndex() + 1, all)).toEqual(makeEntries(1, 4 + i, i + 1))
      })
    })

    it('truncates a conflicting suffix and keeps hard state without entries', async () => {
      const s = await start()
      const v = s.open('g', conf)
      await s.persist([{ group: 'g', entries: makeEntries(1, 6, 1) }])
      await s.persist([
        { group: 'g', entries: makeEntries(3, 5, 2), hardState: { term: 2, vote: '', commit: 2 } },
      ])
      expect(v.lastIndex()).toBe(4)
      expect([1, 2, 3, 4].map((i) => v.term(i))).toEqual([1, 1, 2, 2])
      await s.persist([{ group: 'g', entries: [], hardState: { term: 3, vote: 'n2', commit: 4 } }])
      expect(v.initialState().hardState).toEqual({ term: 3, vote: 'n2', commit: 4 })
    })

    it('replaces a group log with a snapshot received in a batch', async () => {
      const s = await start()
      s.open('g', conf)
      await s.persist([{ group: 'g', entries: makeEntries(1, 5, 1) }])
      const snap = { meta: { index: 20, term: 3, conf }, data: new Uint8Array([1, 2, 3]) }
      await s.persist([{ group: 'g', snapshot: snap, entries: makeEntries(21, 23, 3) }])
      const v = s.open('g')
      expect(v.firstIndex()).toBe(21)
      expect(v.lastIndex()).toBe(22)
      expect(v.term(20)).toBe(3)
      expect(v.snapshot()).toEqual(snap)
    })

    it('compacts all but keepEntries entries before a recorded snapshot', async () => {
      const s = await start()
      const v = s.open('g', conf)
      await s.persist([{ group: 'g', entries: [...makeEntries(1, 50, 1), ...makeEntries(50, 101, 2)] }])
      const snap = await s.snapshot('g', 80, conf, new Uint8Array([9]), 10)
      expect(snap.meta).toEqual({ index: 80, term: 2, conf })
      expect(v.snapshot().meta.index).toBe(80)
      expect(v.firstIndex()).toBe(71)
      expect(v.term(70)).toBe(2)
      expect(() => v.term(69)).toThrow(CompactedError)
      expect(() => v.entries(70, 80, all)).toThrow(CompactedError)
      expect(v.entries(71, 101, all)).toHaveLength(30)
      expect(() => v.entries(71, 102, all)).toThrow(UnavailableError)
      await s.snapshot('g', 100, conf, new Uint8Array([10]), 0)
      expect(v.firstIndex()).toBe(101)
      expect(v.term(100)).toBe(2)
    })

    it('drops a group and forgets it', async () => {
      const s = await start()
      s.open('keep', conf)
      s.open('gone', conf)
      await s.persist([
        { group: 'keep', entries: makeEntries(1, 3, 1) },
        { group: 'gone', entries: makeEntries(1, 3, 1) },
      ])
      await s.drop('gone')
      expect(s.groups()).toEqual(['keep'])
      expect(s.open('gone').lastIndex()).toBe(0)
    })

    it('writes nothing of a batch when one write in it is rejected', async () => {
      const s = await start()
      const a = s.open('a', conf)
      const b = s.open('b', conf)
      await s.persist([{ group: 'a', entries: makeEntries(1, 3, 1) }])
      const bad: GroupWrite[] = [
        { group: 'a', entries: makeEntries(3, 5, 1), hardState: { term: 1, vote: '', commit: 4 } },
        { group: 'b', entries: makeEntries(5, 6, 1) }, // a gap: b is empty
      ]
      await expect(s.persist(bad)).rejects.toThrow(RangeError)
      expect(a.lastIndex()).toBe(2)
      expect(a.initialState().hardState.commit).toBe(0)
      expect(b.lastIndex()).toBe(0)
      const aborted = AbortSignal.abort()
      await expect(s.persist(bad.slice(0, 1), { signal: aborted })).rejects.toThrow()
      expect(a.lastIndex()).toBe(2)
    })

    it('keeps every group, hard state, entry, snapshot and compaction point across reopen', async () => {
      let s = await start()
      if (!harness!.durable) return
      s.open('a', conf)
      s.open('b', { voters: ['n1'], learners: ['n4'] })
      await s.persist([
        { group: 'a', hardState: { term: 2, vote: 'n1', commit: 60 }, entries: makeEntries(1, 61, 2, 40) },
        { group: 'b', hardState: { term: 1, vote: 'n2', commit: 0 }, entries: makeEntries(1, 3, 1) },
      ])
      await s.snapshot('a', 50, conf, new Uint8Array([5, 0, 5]), 5)
      await s.persist([{ group: 'b', entries: makeEntries(2, 3, 4) }])
      s = await reopen()
      expect(s.groups().sort()).toEqual(['a', 'b'])
      const a = s.open('a')
      expect(a.initialState()).toEqual({ hardState: { term: 2, vote: 'n1', commit: 60 }, confState: conf })
      expect(a.firstIndex()).toBe(46)
      expect(a.term(45)).toBe(2)
      expect(a.entries(46, 61, all)).toEqual(makeEntries(46, 61, 2, 40))
      expect(a.snapshot()).toEqual({ meta: { index: 50, term: 2, conf }, data: new Uint8Array([5, 0, 5]) })
      const b = s.open('b')
      expect(b.initialState().confState).toEqual({ voters: ['n1'], learners: ['n4'] })
      expect(b.lastIndex()).toBe(2)
      expect(b.term(2)).toBe(4)
    })

    it('keeps a dropped group dropped and a received snapshot across reopen', async () => {
      let s = await start()
      if (!harness!.durable) return
      s.open('x', conf)
      s.open('y', conf)
      const snap = { meta: { index: 7, term: 2, conf }, data: new Uint8Array([7]) }
      await s.persist([
        { group: 'x', entries: makeEntries(1, 3, 1) },
        { group: 'y', snapshot: snap, entries: makeEntries(8, 9, 2) },
      ])
      await s.drop('x')
      s = await reopen()
      expect(s.groups()).toEqual(['y'])
      const y = s.open('y')
      expect(y.snapshot()).toEqual(snap)
      expect(y.firstIndex()).toBe(8)
      expect(y.lastIndex()).toBe(8)
    })
  })
}
