import { assert } from './assert.js'
import { CompactedError, UnavailableError } from './errors.js'
import { limitEntriesBytes } from './memory-storage.js'
import type { Entry, Snapshot, Storage } from './types.js'

/**
 * Entries (and possibly an incoming snapshot) that Raft holds but the application has not yet
 * persisted. They move to `Storage` when the application persists a Ready and calls `advance()`.
 */
class Unstable {
  snapshot: Snapshot | undefined
  entries: Entry[] = []
  /** Index of `entries[0]` (or where the next entry would go). */
  offset: number

  constructor(offset: number) {
    this.offset = offset
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.meta.index + 1 : undefined
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1
    return this.snapshot?.meta.index
  }

  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot && this.snapshot.meta.index === index) return this.snapshot.meta.term
      return undefined
    }
    const last = this.maybeLastIndex()
    if (last === undefined || index > last) return undefined
    return this.entries[index - this.offset]!.term
  }

  /** Entries up to `index` (with `term`) are durable: drop them, unless they were replaced since. */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index)
    if (t === undefined || t !== term || index < this.offset) return
    this.entries = this.entries.slice(index + 1 - this.offset)
    this.offset = index + 1
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.meta.index === index) this.snapshot = undefined
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.meta.index + 1
    this.entries = []
    this.snapshot = snapshot
  }

  /** Append, truncating whatever the new entries conflict with. */
  truncateAndAppend(entries: Entry[]): void {
    const after = entries[0]!.index
    if (after === this.offset + this.entries.length) {
      this.entries = this.entries.concat(entries)
    } else if (after <= this.offset) {
      // Replace everything unstable; storage truncates its own conflicting suffix on append.
      this.offset = after
      this.entries = entries.slice()
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(entries)
    }
  }

  slice(lo: number, hi: number): Entry[] {
    assert(lo >= this.offset && hi <= this.offset + this.entries.length, () => `unstable.slice [${lo},${hi})`)
    return this.entries.slice(lo - this.offset, hi - this.offset)
  }
}

/**
 * The Raft log: durable entries in `Storage` followed by unstable ones, plus the commit and apply
 * positions (Raft paper §5.3). Invariant: applied ≤ committed ≤ lastIndex.
 */
export class RaftLog {
  readonly storage: Storage
  readonly unstable: Unstable
  committed: number
  applied: number

  constructor(storage: Storage) {
    this.storage = storage
    const first = storage.firstIndex()
    const last = storage.lastIndex()
    this.unstable = new Unstable(last + 1)
    this.committed = first - 1
    this.applied = first - 1
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex()
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex()
  }

  /** The last index that is durable (persisted by the application). */
  lastStableIndex(): number {
    return this.unstable.offset - 1
  }

  lastTerm(): number {
    return this.term(this.lastIndex())
  }

  /** The term of `index`; 0 when it is outside the log (compacted or beyond the end). */
  term(index: number): number {
    const dummy = this.firstIndex() - 1
    if (index < dummy || index > this.lastIndex()) return 0
    const t = this.unstable.maybeTerm(index)
    if (t !== undefined) return t
    try {
      return this.storage.term(index)
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return 0
      throw e
    }
  }

  /** Like `term`, but throws `CompactedError` for a compacted index (callers send a snapshot). */
  termOrThrow(index: number): number {
    const dummy = this.firstIndex() - 1
    if (index < dummy) throw new CompactedError(index, dummy + 1)
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex())
    return this.unstable.maybeTerm(index) ?? this.storage.term(index)
  }

  matchTerm(index: number, term: number): boolean {
    const dummy = this.firstIndex() - 1
    if (index < dummy || index > this.lastIndex()) return false
    return this.term(index) === term
  }

  /** §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, term: number): boolean {
    const myTerm = this.lastTerm()
    return term > myTerm || (term === myTerm && lastIndex >= this.lastIndex())
  }

  /** Appends entries and returns the new last index (the leader's path). */
  append(entries: Entry[]): number {
    if (entries.length === 0) return this.lastIndex()
    assert(entries[0]!.index - 1 >= this.committed, () => `append below commit ${this.committed}`)
    this.unstable.truncateAndAppend(entries)
    return this.lastIndex()
  }

  /**
   * The follower's side of AppendEntries (Figure 2, receiver steps 2–5): if the entry at `index`
   * has `logTerm`, append what is new and commit up to `min(committed, last new index)`.
   * Returns the last new index, or -1 when the consistency check fails.
   */
  maybeAppend(index: number, logTerm: number, committed: number, entries: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1
    const lastNew = index + entries.length
    const conflict = this.findConflict(entries)
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `conflict at ${conflict} ≤ committed ${this.committed}`)
      this.append(entries.slice(conflict - (index + 1)))
    }
    this.commitTo(Math.min(committed, lastNew))
    return lastNew
  }

  /** First index whose term differs from ours (or that we lack); 0 when all match. */
  private findConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index
    }
    return 0
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term`: where a rejected follower and the leader
   * may agree. Lets the leader skip a whole term of conflicting entries per round trip (§5.3).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      const t = this.term(index)
      if (t === 0 && index < this.firstIndex()) return { index, term: 0 }
      if (t <= term) return { index, term: t }
    }
    return { index: 0, term: 0 }
  }

  commitTo(index: number): void {
    if (index <= this.committed) return
    assert(index <= this.lastIndex(), () => `commit ${index} is beyond last index ${this.lastIndex()}`)
    this.committed = index
  }

  /** §5.4.2: a leader commits only by counting replicas of an entry from its current term. */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index)
      return true
    }
    return false
  }

  appliedTo(index: number): void {
    if (index === 0) return
    assert(
      index <= this.committed && index >= this.applied,
      () => `applied ${index} outside [${this.applied}, ${this.committed}]`,
    )
    this.applied = index
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term)
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index)
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined
  }

  /** Committed entries not yet handed to the application, at most `maxBytes` (at least one). */
  nextCommittedEntries(maxBytes: number): Entry[] {
    if (this.hasPendingSnapshot()) return []
    const lo = this.applied + 1
    const hi = this.committed + 1
    if (lo >= hi) return []
    return this.slice(lo, hi, maxBytes)
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.committed > this.applied
  }

  /** Entries from `index` to the end, at most `maxBytes` (at least one). */
  entriesFrom(index: number, maxBytes: number): Entry[] {
    if (index > this.lastIndex()) return []
    return this.slice(index, this.lastIndex() + 1, maxBytes)
  }

  /** Entries `[lo, hi)` from storage and then the unstable tail; throws `CompactedError` below first. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return []
    const first = this.firstIndex()
    if (lo < first) throw new CompactedError(lo, first)
    assert(hi <= this.lastIndex() + 1, () => `slice [${lo},${hi}) beyond last ${this.lastIndex()}`)
    let out: Entry[] = []
    if (lo < this.unstable.offset) {
      out = this.storage.entries(lo, Math.min(hi, this.unstable.offset), maxBytes)
      const wanted = Math.min(hi, this.unstable.offset) - lo
      if (out.length < wanted) return out // storage applied the byte limit
    }
    if (hi > this.unstable.offset) {
      const tail = this.unstable.slice(Math.max(lo, this.unstable.offset), hi)
      out = out.length > 0 ? out.concat(tail) : tail
    }
    return limitEntriesBytes(out, maxBytes)
  }

  /** The newest snapshot: an incoming unstable one, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot()
  }

  /** Replace the log with a snapshot received from the leader (InstallSnapshot). */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.meta.index
    this.unstable.restore(snapshot)
  }
}
