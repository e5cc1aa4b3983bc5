/**
 * Resident actors: each one's state (committed plus pending writes), its input gate, its pending
 * call ids and its replay ring, in one LRU bounded by count, bytes and idle time. Only actors with
 * nothing pending, running or queued are evicted — their state is all in the store, so eviction
 * is always safe.
 */
import { type BaseState, keyBytes } from './call-context.js'
import type { ActorLimits } from './config.js'
import { type CallRecord, recordBytes } from './replay.js'

/** Fixed bytes charged per resident actor besides its state (maps, records, closures). */
export const actorOverheadBytes = 1_536

/** One resident actor. */
export class ActorRecord implements BaseState {
  /** Resident state: committed values with this actor's pending writes applied. */
  state: Map<string, Uint8Array> | undefined
  bytes = 0
  /** Ids of calls whose writes are pending, oldest first. */
  readonly pending: number[] = []
  lastCallId = 0
  /** Calls admitted to the input gate and not finished (running included). */
  queued = 0
  /** The tail of the input gate: the next call runs after it settles. */
  gate: Promise<void> = Promise.resolve()
  lastUsedMs = 0
  /** Set when pending writes were discarded: queued calls fail, the record is gone. */
  discarded = false
  readonly ring: CallRecord[] = []
  ringBytes = 0

  constructor(
    readonly namespace: string,
    readonly actor: string,
  ) {}

  get(key: string): Uint8Array | undefined {
    return this.state!.get(key)
  }

  entries(): Iterable<[string, Uint8Array]> {
    return this.state!.entries()
  }

  /** Loads the stored state (activation). */
  load(entries: Array<[string, Uint8Array]>): void {
    this.state = new Map(entries)
    this.bytes = 0
    for (const [k, v] of entries) this.bytes += keyBytes(k) + v.length
  }

  /** Applies a finished call's writes to the resident state (they are pending until commit). */
  apply(writes: Array<[string, Uint8Array | null]>): void {
    const state = this.state!
    for (const [k, v] of writes) {
      const old = state.get(k)
      if (old) this.bytes -= keyBytes(k) + old.length
      if (v === null) state.delete(k)
      else {
        state.set(k, v)
        this.bytes += keyBytes(k) + v.length
      }
    }
  }

  record(entry: CallRecord, ringSize: number): void {
    this.ring.push(entry)
    this.ringBytes += recordBytes(entry)
    while (this.ring.length > ringSize) this.ringBytes -= recordBytes(this.ring.shift()!)
  }

  get residentBytes(): number {
    return actorOverheadBytes + this.bytes + this.ringBytes
  }

  get evictable(): boolean {
    return this.queued === 0 && this.pending.length === 0
  }
}

/** The LRU of resident actors over all namespaces. */
export class ActorTable {
  private readonly records = new Map<string, ActorRecord>()
  private bytes = 0
  /** Actors evicted so far (for tests and metrics). */
  evictions = 0

  constructor(private readonly limits: ActorLimits) {}

  private static key(namespace: string, actor: string): string {
    return `${namespace}\u0000${actor}`
  }

  get size(): number {
    return this.records.size
  }

  get residentBytes(): number {
    return this.bytes
  }

  find(namespace: string, actor: string): ActorRecord | undefined {
    return this.records.get(ActorTable.key(namespace, actor))
  }

  /** The record of an actor, created empty (not loaded) if absent, moved to most recent. */
  touch(namespace: string, actor: string, nowMs: number): ActorRecord {
    const key = ActorTable.key(namespace, actor)
    let rec = this.records.get(key)
    if (rec) this.records.delete(key)
    else rec = new ActorRecord(namespace, actor)
    this.records.set(key, rec)
    rec.lastUsedMs = nowMs
    return rec
  }

  /** Re-counts one record's bytes after its state or ring changed. */
  account(rec: ActorRecord, before: number): void {
    if (this.records.get(ActorTable.key(rec.namespace, rec.actor)) === rec)
      this.bytes += rec.residentBytes - before
  }

  /** Removes a record whatever its state (discard). */
  remove(rec: ActorRecord): void {
    const key = ActorTable.key(rec.namespace, rec.actor)
    if (this.records.get(key) !== rec) return
    this.records.delete(key)
    if (rec.state) this.bytes -= rec.residentBytes
  }

  /** Records of one namespace (for alarms and discard). */
  *ofNamespace(namespace: string): Iterable<ActorRecord> {
    for (const rec of this.records.values()) if (rec.namespace === namespace) yield rec
  }

  /** Marks a record as loaded, counting its bytes. */
  loaded(rec: ActorRecord): void {
    if (this.records.get(ActorTable.key(rec.namespace, rec.actor)) === rec) this.bytes += rec.residentBytes
  }

  /**
   * Evicts least recently used evictable actors until count and bytes are within their caps,
   * and every evictable actor idle for `idleEvictMs`. Returns how many were evicted.
   */
  evict(nowMs: number): number {
    let evicted = 0
    for (const [key, rec] of this.records) {
      const overCount = this.records.size > this.limits.residentActorsMax
      const overBytes = this.bytes > this.limits.residentBytesMax
      const idle = nowMs - rec.lastUsedMs >= this.limits.idleEvictMs
      if (!overCount && !overBytes && !idle) break // LRU order: everything after is more recent
      if (!rec.evictable) continue
      this.records.delete(key)
      if (rec.state) this.bytes -= rec.residentBytes
      evicted++
    }
    this.evictions += evicted
    return evicted
  }
}
