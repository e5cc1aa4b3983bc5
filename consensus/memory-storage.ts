import { assert } from './assert.js'
import { CompactedError, UnavailableError } from './errors.js'
import type { ConfState, Entry, HardState, Snapshot, WritableStorage } from './types.js'

/** Bytes an entry counts for in size limits: its payload plus a fixed header estimate. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + 24
}

/**
 * Keeps the first `count` entries whose total size stays within `maxBytes`, but always at least
 * one (etcd's `limitSize`): a single oversized entry must still make progress.
 */
export function limitEntriesBytes(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0) return entries
  let size = entrySizeBytes(entries[0]!)
  let count = 1
  while (count < entries.length) {
    size += entrySizeBytes(entries[count]!)
    if (size > maxBytes) break
    count++
  }
  return count === entries.length ? entries : entries.slice(0, count)
}

/**
 * The in-memory `Storage`: the reference implementation of the contract, used by tests, the
 * simulator and benchmarks. `ents[0]` is a dummy entry holding the snapshot's index and term, so
 * `term(snapshotIndex)` answers without the snapshot (etcd's MemoryStorage does the same).
 */
export class MemoryStorage implements WritableStorage {
  private hardState: HardState = { term: 0, vote: '', commit: 0 }
  private snap: Snapshot = {
    meta: { index: 0, term: 0, conf: { voters: [], learners: [] } },
    data: new Uint8Array(),
  }
  private ents: Entry[] = [{ term: 0, index: 0, type: 0, data: new Uint8Array() }]

  /** A storage for a brand-new group whose initial members are `conf` (bootstrap). */
  static bootstrap(conf: ConfState): MemoryStorage {
    const storage = new MemoryStorage()
    storage.snap = { meta: { index: 0, term: 0, conf: cloneConf(conf) }, data: new Uint8Array() }
    return storage
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConf(this.snap.meta.conf) }
  }

  setHardState(hardState: HardState): void {
    this.hardState = { ...hardState }
  }

  /** The persisted hard state (tests read it back). */
  getHardState(): HardState {
    return { ...this.hardState }
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index
    if (lo <= offset) throw new CompactedError(lo, offset + 1)
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex())
    assert(lo <= hi, () => `entries: lo ${lo} > hi ${hi}`)
    if (this.ents.length === 1) return []
    return limitEntriesBytes(this.ents.slice(lo - offset, hi - offset), maxBytes)
  }

  term(index: number): number {
    const offset = this.ents[0]!.index
    if (index < offset) throw new CompactedError(index, offset + 1)
    if (index - offset >= this.ents.length) throw new UnavailableError(index, this.lastIndex())
    return this.ents[index - offset]!.term
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1
  }

  snapshot(): Snapshot {
    return this.snap
  }

  applySnapshot(snapshot: Snapshot): void {
    const current = this.snap.meta.index
    assert(
      snapshot.meta.index >= current,
      () => `applySnapshot: ${snapshot.meta.index} is older than ${current}`,
    )
    this.snap = snapshot
    this.ents = [{ term: snapshot.meta.term, index: snapshot.meta.index, type: 0, data: new Uint8Array() }]
  }

  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    assert(
      index >= this.snap.meta.index,
      () => `createSnapshot: ${index} is older than ${this.snap.meta.index}`,
    )
    assert(
      index <= this.lastIndex(),
      () => `createSnapshot: ${index} is beyond last index ${this.lastIndex()}`,
    )
    const offset = this.ents[0]!.index
    this.snap = { meta: { index, term: this.ents[index - offset]!.term, conf: cloneConf(conf) }, data }
    return this.snap
  }

  compact(index: number): void {
    const offset = this.ents[0]!.index
    if (index <= offset) return
    assert(index <= this.lastIndex(), () => `compact: ${index} is beyond last index ${this.lastIndex()}`)
    assert(
      index <= this.snap.meta.index,
      () => `compact: ${index} is beyond snapshot ${this.snap.meta.index}`,
    )
    const keep = this.ents.slice(index - offset)
    keep[0] = { term: keep[0]!.term, index: keep[0]!.index, type: 0, data: new Uint8Array() }
    this.ents = keep
  }

  append(entries: Entry[]): void {
    if (entries.length === 0) return
    const first = this.firstIndex()
    const last = entries[entries.length - 1]!.index
    if (last < first) return // everything given is already compacted
    if (entries[0]!.index < first) entries = entries.slice(first - entries[0]!.index)
    const offset = entries[0]!.index - this.ents[0]!.index
    assert(
      offset <= this.ents.length,
      () => `append: gap, last ${this.lastIndex()}, got ${entries[0]!.index}`,
    )
    if (offset < this.ents.length) this.ents.length = offset // truncate a conflicting suffix in place
    // Appending in place keeps an append O(entries) rather than O(log); readers get copies.
    for (const e of entries) this.ents.push(e)
  }
}

/** A deep copy of a membership, so callers never share arrays with storage. */
export function cloneConf(conf: ConfState): ConfState {
  return { voters: [...conf.voters], learners: [...conf.learners] }
}
