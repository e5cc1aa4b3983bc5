import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AssertionError, CompactedError, type Entry, MemoryStorage } from '../../consensus/index.js'
import { RaftLog } from '../../consensus/raft-log.js'
import { entry, logOfTerms } from './paper-helpers.js'

const SEED = 20_251_125
const conf = { voters: ['a'], learners: [] }

/** A log whose storage holds `stable` terms and whose unstable tail holds `unstable` terms. */
function raftLog(stable: number[], unstable: number[] = []): RaftLog {
  const storage = MemoryStorage.bootstrap(conf)
  storage.append(logOfTerms(stable))
  const log = new RaftLog(storage)
  const tail = unstable.map((t, i) => entry(stable.length + 1 + i, t, 'u'))
  if (tail.length > 0) log.append(tail)
  return log
}

function terms(log: RaftLog): number[] {
  const out: number[] = []
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i))
  return out
}

describe('RaftLog', () => {
  it('RaftLog starts with commit and applied at the snapshot index of its storage', () => {
    const storage = MemoryStorage.bootstrap(conf)
    storage.applySnapshot({ meta: { index: 5, term: 3, conf }, data: new Uint8Array() })
    const log = new RaftLog(storage)
    expect(log).toMatchObject({ committed: 5, applied: 5 })
    expect([log.firstIndex(), log.lastIndex(), log.lastTerm()]).toEqual([6, 5, 3])
  })

  it('RaftLog.term answers from the unstable tail and storage, and 0 outside the log', () => {
    const log = raftLog([1, 1], [2, 3])
    expect([0, 1, 2, 3, 4, 5].map((i) => log.term(i))).toEqual([0, 1, 1, 2, 3, 0])
    expect(log.lastStableIndex()).toBe(2)
  })

  it.each([
    ['a newer last term with a shorter log', 2, 3, true],
    ['the same last term and a longer log', 4, 2, true],
    ['the same last term and the same length', 3, 2, true],
    ['the same last term and a shorter log', 2, 2, false],
    ['an older last term with a longer log', 9, 1, false],
  ])('RaftLog.isUpToDate (§5.4.1) for a candidate with %s is %s', (_case, index, term, upToDate) => {
    expect(raftLog([1, 2, 2]).isUpToDate(index, term)).toBe(upToDate)
  })

  it.each([
    [6, 5, 6, 4],
    [6, 4, 6, 4],
    [6, 3, 4, 2],
    [6, 1, 2, 1],
    [6, 0, 0, 0],
    [3, 4, 3, 2],
  ])(
    'RaftLog.findConflictByTerm(%i, %i) on terms [1,1,2,2,4,4] finds index %i of term %i',
    (index, term, wantIndex, wantTerm) => {
      expect(raftLog([1, 1, 2, 2, 4, 4]).findConflictByTerm(index, term)).toEqual({
        index: wantIndex,
        term: wantTerm,
      })
    },
  )

  it('RaftLog.maybeAppend returns -1 and changes nothing when the entry at index has another term', () => {
    const log = raftLog([1, 2])
    expect(log.maybeAppend(2, 1, 2, [entry(3, 3)])).toBe(-1)
    expect(log.maybeAppend(3, 2, 2, [])).toBe(-1)
    expect(terms(log)).toEqual([1, 2])
    expect(log.committed).toBe(0)
  })

  it('RaftLog.maybeAppend makes any follower log agree with the leader up to the appended entries', () => {
    const arbTerms = fc
      .array(fc.integer({ min: 1, max: 4 }), { maxLength: 12 })
      .map((t) => t.sort((a, b) => a - b))
    fc.assert(
      fc.property(arbTerms, arbTerms, fc.nat(), (leader, tail, cut) => {
        const common = cut % (leader.length + 1)
        const follower = [...leader.slice(0, common), ...tail]
        const log = raftLog(follower)
        const sent: Entry[] = logOfTerms(leader).slice(common)
        const prevTerm = common === 0 ? 0 : leader[common - 1]!
        expect(log.maybeAppend(common, prevTerm, leader.length, sent)).toBe(leader.length)
        for (let i = 1; i <= leader.length; i++) expect(log.term(i)).toBe(leader[i - 1])
        expect(log.committed).toBe(leader.length)
        const conflicted = follower.some((t, i) => i < leader.length && t !== leader[i])
        if (conflicted) expect(log.lastIndex()).toBe(leader.length)
      }),
      { seed: SEED, numRuns: 500 },
    )
  })

  it('RaftLog.maybeCommit commits an index only when its entry has the given term (§5.4.2)', () => {
    const log = raftLog([1, 2])
    expect(log.maybeCommit(2, 1)).toBe(false)
    expect(log.committed).toBe(0)
    expect(log.maybeCommit(2, 2)).toBe(true)
    expect(log.committed).toBe(2)
    expect(log.maybeCommit(1, 1)).toBe(false) // never moves back
    expect(log.committed).toBe(2)
  })

  it('RaftLog asserts on a commit beyond the last index and an apply outside [applied, committed]', () => {
    const log = raftLog([1, 1, 1])
    expect(() => log.commitTo(4)).toThrow(AssertionError)
    log.commitTo(2)
    log.commitTo(1)
    expect(log.committed).toBe(2)
    expect(() => log.appliedTo(3)).toThrow(AssertionError)
    log.appliedTo(2)
    expect(() => log.appliedTo(1)).toThrow(AssertionError)
  })

  it('RaftLog asserts when entries are appended below the commit index', () => {
    const log = raftLog([1, 1, 1])
    log.commitTo(2)
    expect(() => log.append([entry(2, 2)])).toThrow(AssertionError)
  })

  it('RaftLog.nextCommittedEntries hands out at most maxBytes of entries, but at least one', () => {
    const log = raftLog([1, 1, 1, 1])
    log.commitTo(4)
    expect(log.nextCommittedEntries(1).map((e) => e.index)).toEqual([1])
    expect(log.nextCommittedEntries(Number.MAX_SAFE_INTEGER).map((e) => e.index)).toEqual([1, 2, 3, 4])
    log.appliedTo(4)
    expect(log.nextCommittedEntries(Number.MAX_SAFE_INTEGER)).toEqual([])
    expect(log.hasNextCommittedEntries()).toBe(false)
  })

  it('RaftLog.slice spans storage and the unstable tail and throws CompactedError below the first index', () => {
    const storage = MemoryStorage.bootstrap(conf)
    storage.append(logOfTerms([1, 1, 2, 2]))
    storage.createSnapshot(2, conf, new Uint8Array())
    storage.compact(2)
    const log = new RaftLog(storage)
    log.append([entry(5, 3), entry(6, 3)])
    expect(log.slice(3, 7, Number.MAX_SAFE_INTEGER).map((e) => [e.index, e.term])).toEqual([
      [3, 2],
      [4, 2],
      [5, 3],
      [6, 3],
    ])
    expect(() => log.slice(2, 4, Number.MAX_SAFE_INTEGER)).toThrow(CompactedError)
    expect(() => log.termOrThrow(1)).toThrow(CompactedError)
    expect(log.term(2)).toBe(1)
  })

  it('RaftLog.stableTo drops persisted unstable entries, unless they were replaced by another term since', () => {
    const log = raftLog([1], [1, 1, 1])
    log.stableTo(3, 2) // not the term we hold at 3: a stale persistence report
    expect(log.lastStableIndex()).toBe(1)
    log.stableTo(3, 1)
    expect(log.lastStableIndex()).toBe(3)
    expect(log.unstable.entries.map((e) => e.index)).toEqual([4])
  })

  it('RaftLog.restore replaces the log with a snapshot and holds back committed entries until it is persisted', () => {
    const log = raftLog([1, 1])
    log.restore({ meta: { index: 10, term: 4, conf }, data: new Uint8Array() })
    expect([log.firstIndex(), log.lastIndex(), log.lastTerm(), log.committed]).toEqual([11, 10, 4, 10])
    expect(log.hasPendingSnapshot()).toBe(true)
    expect(log.nextCommittedEntries(Number.MAX_SAFE_INTEGER)).toEqual([])
    expect(log.hasNextCommittedEntries()).toBe(false)
    log.stableSnapTo(10)
    expect(log.hasPendingSnapshot()).toBe(false)
  })
})
