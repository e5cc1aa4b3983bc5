import { assert } from './assert.js'
import { cloneConf, MemoryStorage } from './memory-storage.js'
import type { ConfState, GroupWrite, LogStore, Snapshot, Storage } from './types.js'

/** The log bounds of one group, as `checkGroupWrites` tracks them through a batch. */
export interface LogBounds {
  /** Index of the snapshot or compaction point (`firstIndex() - 1`). */
  offset: number
  lastIndex: number
  snapshotIndex: number
}

/**
 * Checks a batch before anything is written, so that a store can reject it whole: within each
 * write the entries must be consecutive, must not leave a gap after the group's last index (or
 * after the write's snapshot), and a snapshot must not be older than the group's. Later writes to
 * the same group in one batch see the earlier ones. Throws `RangeError` naming the group.
 */
export function checkGroupWrites(writes: GroupWrite[], bounds: (group: string) => LogBounds): void {
  const seen = new Map<string, LogBounds>()
  for (const w of writes) {
    if (typeof w.group !== 'string' || w.group.length === 0) {
      throw new TypeError(`Cannot persist a write for group '${String(w.group)}': name is empty`)
    }
    let b = seen.get(w.group) ?? { ...bounds(w.group) }
    if (w.snapshot) {
      const index = w.snapshot.meta.index
      if (index < b.snapshotIndex) {
        throw new RangeError(
          `Cannot persist snapshot ${index} for group '${w.group}': older than snapshot ${b.snapshotIndex}`,
        )
      }
      b = { offset: index, lastIndex: index, snapshotIndex: index }
    }
    for (let i = 1; i < w.entries.length; i++) {
      if (w.entries[i]!.index !== w.entries[i - 1]!.index + 1) {
        throw new RangeError(
          `Cannot persist entries for group '${w.group}': index ${w.entries[i]!.index} does not follow ${w.entries[i - 1]!.index}`,
        )
      }
    }
    const first = w.entries[0]
    const last = w.entries[w.entries.length - 1]
    if (first && last && last.index > b.offset) {
      if (first.index > b.lastIndex + 1) {
        throw new RangeError(
          `Cannot persist entries for group '${w.group}': index ${first.index} leaves a gap after ${b.lastIndex}`,
        )
      }
      b.lastIndex = last.index
    }
    seen.set(w.group, b)
  }
}

/** The bounds of a group held in a `MemoryStorage` (or of a group that does not exist yet). */
export function memoryBounds(storage: MemoryStorage | undefined): LogBounds {
  if (!storage) return { offset: 0, lastIndex: 0, snapshotIndex: 0 }
  return {
    offset: storage.firstIndex() - 1,
    lastIndex: storage.lastIndex(),
    snapshotIndex: storage.snapshot().meta.index,
  }
}

/**
 * An in-memory `LogStore`: one `MemoryStorage` per group. `persist` checks the whole batch first
 * and then applies it, so a rejected batch leaves nothing written (the same promise a durable store
 * gets from a transaction). Not durable; for tests, the simulator and benchmarks.
 */
export class MemoryLogStore implements LogStore {
  private readonly stores = new Map<string, MemoryStorage>()
  private closed = false
  /** How many `persist` calls completed: a durable store would have made one fsync for each. */
  persistCount = 0

  open(group: string, bootstrap?: ConfState): Storage {
    this.checkOpen()
    let s = this.stores.get(group)
    if (!s) {
      s = bootstrap ? MemoryStorage.bootstrap(cloneConf(bootstrap)) : new MemoryStorage()
      this.stores.set(group, s)
    }
    return s
  }

  groups(): string[] {
    return [...this.stores.keys()]
  }

  async persist(writes: GroupWrite[], options?: { signal?: AbortSignal }): Promise<void> {
    options?.signal?.throwIfAborted()
    this.checkOpen()
    checkGroupWrites(writes, (g) => memoryBounds(this.stores.get(g)))
    for (const w of writes) {
      let s = this.stores.get(w.group)
      if (!s) {
        s = new MemoryStorage()
        this.stores.set(w.group, s)
      }
      if (w.snapshot) s.applySnapshot(w.snapshot)
      s.append(w.entries)
      if (w.hardState) s.setHardState(w.hardState)
    }
    this.persistCount++
  }

  async snapshot(
    group: string,
    index: number,
    conf: ConfState,
    data: Uint8Array,
    keepEntries: number,
    options?: { signal?: AbortSignal },
  ): Promise<Snapshot> {
    options?.signal?.throwIfAborted()
    this.checkOpen()
    if (!Number.isInteger(keepEntries) || keepEntries < 0) {
      throw new RangeError(`Cannot snapshot group '${group}': keepEntries ${keepEntries} is not a count`)
    }
    const s = this.open(group) as MemoryStorage
    const snap = s.createSnapshot(index, conf, data)
    const compactIndex = index - keepEntries
    if (compactIndex >= s.firstIndex()) s.compact(compactIndex)
    return snap
  }

  async drop(group: string, options?: { signal?: AbortSignal }): Promise<void> {
    options?.signal?.throwIfAborted()
    this.checkOpen()
    this.stores.delete(group)
  }

  async close(): Promise<void> {
    this.closed = true
  }

  private checkOpen(): void {
    assert(!this.closed, 'memory log store used after close')
  }
}
