/**
 * The compliance suite for `WritableStorage` (consensus/types.ts): every implementation registers
 * it with `storageCompliance(name, factory)` and must pass it unchanged.
 */
import { describe, expect, it } from 'vitest'
import {
  AssertionError,
  CompactedError,
  type ConfState,
  type Entry,
  entrySizeBytes,
  UnavailableError,
  type WritableStorage,
} from '../../consensus/index.js'

/** Entries `[lo, hi)` with the given term; data is the index as text (so sizes differ a little). */
export function makeEntries(lo: number, hi: number, term: number, dataBytes = 8): Entry[] {
  const out: Entry[] = []
  for (let i = lo; i < hi; i++) {
    const data = new Uint8Array(dataBytes)
    new DataView(data.buffer).setUint32(0, i)
    out.push({ index: i, term, type: 0, data })
  }
  return out
}

const conf: ConfState = { voters: ['a', 'b', 'c'], learners: ['d'] }

/** Registers the `Storage`/`WritableStorage` contract tests for one implementation. */
export function storageCompliance(name: string, factory: () => WritableStorage): void {
  describe(`Storage compliance: ${name}`, () => {
    it('starts empty with firstIndex 1, lastIndex 0 and term(0) = 0', () => {
      const s = factory()
      expect(s.firstIndex()).toBe(1)
      expect(s.lastIndex()).toBe(0)
      expect(s.term(0)).toBe(0)
      expect(s.entries(1, 1, Number.POSITIVE_INFINITY)).toEqual([])
      expect(s.initialState().hardState).toEqual({ term: 0, vote: '', commit: 0 })
    })

    it('answers term and entries for every appended index', () => {
      const s = factory()
      s.append(makeEntries(1, 6, 1))
      s.append(makeEntries(6, 8, 2))
      expect(s.lastIndex()).toBe(7)
      for (let i = 1; i <= 5; i++) expect(s.term(i)).toBe(1)
      expect(s.term(7)).toBe(2)
      const all = s.entries(1, 8, Number.POSITIVE_INFINITY)
      expect(all.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(all[3]!.data).toEqual(makeEntries(4, 5, 1)[0]!.data)
      expect(s.entries(3, 5, Number.POSITIVE_INFINITY).map((e) => e.index)).toEqual([3, 4])
    })

    it('throws UnavailableError for indexes beyond the last index', () => {
      const s = factory()
      s.append(makeEntries(1, 4, 1))
      expect(() => s.term(4)).toThrow(UnavailableError)
      expect(() => s.entries(1, 5, Number.POSITIVE_INFINITY)).toThrow(UnavailableError)
    })

    it('limits entries to maxBytes but returns at least one entry when the first is over', () => {
      const s = factory()
      s.append(makeEntries(1, 6, 1, 100))
      const one = entrySizeBytes(s.entries(1, 2, Number.POSITIVE_INFINITY)[0]!)
      expect(s.entries(1, 6, 0)).toHaveLength(1)
      expect(s.entries(1, 6, one)).toHaveLength(1)
      expect(s.entries(1, 6, 2 * one)).toHaveLength(2)
      expect(s.entries(1, 6, 2 * one + one - 1)).toHaveLength(2)
      expect(s.entries(2, 6, 3 * one)).toHaveLength(3)
    })

    it('truncates a conflicting suffix when entries are appended over it', () => {
      const s = factory()
      s.append(makeEntries(1, 6, 1))
      s.append(makeEntries(3, 5, 2))
      expect(s.lastIndex()).toBe(4)
      expect([1, 2, 3, 4].map((i) => s.term(i))).toEqual([1, 1, 2, 2])
      expect(() => s.term(5)).toThrow(UnavailableError)
    })

    it('keeps hard state as set and returns copies from initialState', () => {
      const s = factory()
      s.setHardState({ term: 3, vote: 'b', commit: 2 })
      const state = s.initialState()
      expect(state.hardState).toEqual({ term: 3, vote: 'b', commit: 2 })
      state.hardState.term = 99
      state.confState.voters.push('z')
      expect(s.initialState().hardState.term).toBe(3)
      expect(s.initialState().confState.voters).not.toContain('z')
    })

    it('records a snapshot at an index with its term and membership', () => {
      const s = factory()
      s.append(makeEntries(1, 4, 1))
      s.append(makeEntries(4, 6, 2))
      const snap = s.createSnapshot(4, conf, new Uint8Array([7, 7]))
      expect(snap.meta).toEqual({ index: 4, term: 2, conf })
      expect(s.snapshot().meta.index).toBe(4)
      expect(s.snapshot().data).toEqual(new Uint8Array([7, 7]))
      expect(s.firstIndex()).toBe(1) // creating a snapshot does not compact
    })

    it('keeps term(compactIndex) and throws CompactedError below it after compact', () => {
      const s = factory()
      s.append(makeEntries(1, 4, 1))
      s.append(makeEntries(4, 8, 2))
      s.createSnapshot(5, conf, new Uint8Array())
      s.compact(4)
      expect(s.firstIndex()).toBe(5)
      expect(s.lastIndex()).toBe(7)
      expect(s.term(4)).toBe(2)
      expect(() => s.term(3)).toThrow(CompactedError)
      expect(() => s.entries(4, 6, Number.POSITIVE_INFINITY)).toThrow(CompactedError)
      expect(s.entries(5, 8, Number.POSITIVE_INFINITY).map((e) => e.index)).toEqual([5, 6, 7])
      s.compact(3) // compacting below the first index does nothing
      expect(s.firstIndex()).toBe(5)
    })

    it('refuses to compact beyond the latest snapshot', () => {
      const s = factory()
      s.append(makeEntries(1, 6, 1))
      s.createSnapshot(2, conf, new Uint8Array())
      expect(() => s.compact(4)).toThrow(AssertionError)
    })

    it('ignores appended entries that are already compacted', () => {
      const s = factory()
      s.append(makeEntries(1, 6, 1))
      s.createSnapshot(3, conf, new Uint8Array())
      s.compact(3)
      s.append(makeEntries(1, 3, 1))
      expect(s.firstIndex()).toBe(4)
      expect(s.lastIndex()).toBe(5)
      s.append(makeEntries(2, 8, 1))
      expect(s.lastIndex()).toBe(7)
    })

    it('replaces everything with an applied snapshot and continues after it', () => {
      const s = factory()
      s.append(makeEntries(1, 6, 1))
      s.applySnapshot({ meta: { index: 10, term: 4, conf }, data: new Uint8Array([1]) })
      expect(s.firstIndex()).toBe(11)
      expect(s.lastIndex()).toBe(10)
      expect(s.term(10)).toBe(4)
      expect(() => s.term(9)).toThrow(CompactedError)
      expect(s.initialState().confState).toEqual(conf)
      expect(s.snapshot().meta.index).toBe(10)
      s.append(makeEntries(11, 13, 5))
      expect(s.lastIndex()).toBe(12)
      expect(s.term(12)).toBe(5)
    })
  })
}
