import { Packr } from 'msgpackr'
import type { Entry, Snapshot, StateMachine } from '../consensus/index.js'
import {
  type ModuleRecord,
  type NamespaceStore,
  type StateWrite,
  StorageKeyError,
  StorageLimitError,
  StorageQuotaError,
} from '../storage/index.js'
import { applyRestore, isRestoreCommand, type RestoreCommand } from './backup/rollback.js'
import { encodeSnapshotMarker, type NamespaceSnapshotTransfer } from './namespace-snapshot.js'

const packr = new Packr({ useRecords: false })

/** The reserved actor id under which a namespace keeps its own bookkeeping (never a user actor). */
export const NAMESPACE_META_ACTOR = '\u0000ns'
const SEQUENCE_KEY = 'seq'

/** An event an actor broadcast; it reaches WebSocket subscribers once its entry commits. */
export interface NamespaceEvent {
  actor: string
  data: Uint8Array
}

/**
 * One namespace Raft entry: the write set and broadcasts of one actor call, or a module deploy.
 * `epoch`, `seq` and `base` chain the entries of one leadership stint (see `NamespaceStateMachine`).
 */
export interface NamespaceEntry {
  epoch: string
  seq: number
  /** The applied index the stint's state was read at (checked on its first entry). */
  base: number
  writes: StateWrite[]
  events?: NamespaceEvent[]
  module?: ModuleRecord
  /** Replace the whole state with a staged archived copy (node/backup/rollback.ts); not chained. */
  restore?: RestoreCommand
}

export function encodeNamespaceEntry(entry: NamespaceEntry): Uint8Array {
  return packr.pack(entry)
}

/** What applying one entry did: applied, or skipped (the chain broke or it broke a limit). */
export type EntryOutcome =
  | { applied: true }
  | { applied: false; reason: 'sequence' | 'limit'; message: string }

/** An entry that applied, at its log index. */
export interface AppliedEntry {
  index: number
  entry: NamespaceEntry
}

/** What the node learns after every applied batch (followers refresh caches; the gateway pushes events). */
export interface NamespaceHooks {
  /** `index` is each entry's log index: its commit position (broadcasts are ordered by it). */
  applied?(namespace: string, entries: AppliedEntry[]): void
  /** The state was replaced by an installed snapshot: everything derived from it is stale. */
  installed?(namespace: string, machine: NamespaceStateMachine): void | Promise<void>
  /** A restore entry at `index` replaced the state: everything derived from it, a stint too, is stale. */
  restored?(namespace: string, machine: NamespaceStateMachine, index: number): void | Promise<void>
}

interface ChainPoint {
  epoch: string
  seq: number
  /** Log index of the last chained entry applied. */
  index: number
}

/**
 * A namespace group's state machine: applies committed write sets to the namespace's LibSQL
 * database, with the applied index in the same transaction (exactly-once after a crash; on
 * restart the group is created with `applied` = the database's applied index).
 *
 * **The chain rule.** A leader executes an actor's calls on top of each other's pending writes
 * and proposes them in order, tagged with its leadership stint's `epoch` and a sequence number
 * 1, 2, 3… If a proposal is dropped (back-pressure, a lost leadership), the calls executed after
 * it were computed on writes that will never exist, so they must not apply either. And a new stint
 * reads state at some applied index `base`; if entries of an older stint apply after `base` (they
 * were in flight when it began), the new stint's calls were computed without them. Every replica
 * therefore applies an entry only if it continues the chain — same epoch and `seq` one past the
 * last applied, or a new epoch at `seq` 1 whose `base` is at or after the last chained entry — and
 * skips it otherwise, identically everywhere. So the applied entries of every stint form one
 * contiguous run computed on exactly the state before it: serializable, with nothing lost. The
 * chain point is stored with the state, so restarts and snapshots keep the rule deterministic.
 * The proposer reads each entry's outcome with `outcome(index)` and fails a skipped call as
 * "not applied, safe to retry".
 */
export class NamespaceStateMachine implements StateMachine {
  private chain: ChainPoint = { epoch: '', seq: 0, index: 0 }
  private readonly outcomes = new Map<number, EntryOutcome>()

  /** Snapshots made here (log compactions) and installed here (databases pulled from a peer). */
  private readonly snapshotCounts = { made: 0, installed: 0 }

  private constructor(
    readonly name: string,
    readonly store: NamespaceStore,
    private readonly hooks: NamespaceHooks,
    private readonly outcomesMax: number,
    private readonly transfer: NamespaceSnapshotTransfer | undefined,
  ) {}

  /**
   * Creates the state machine of a hosted namespace, reading its chain point from the store.
   * `transfer` pulls the database from a peer when a snapshot is installed (without it, installing
   * one fails; compaction works either way).
   */
  static async open(
    name: string,
    store: NamespaceStore,
    hooks: NamespaceHooks = {},
    outcomesMax = 65_536,
    transfer?: NamespaceSnapshotTransfer,
  ): Promise<NamespaceStateMachine> {
    const sm = new NamespaceStateMachine(name, store, hooks, outcomesMax, transfer)
    await sm.reload()
    return sm
  }

  /** Re-reads the chain point (after the store's file was replaced by a snapshot). */
  async reload(): Promise<void> {
    const raw = await this.store.get(NAMESPACE_META_ACTOR, SEQUENCE_KEY)
    this.chain = raw ? (packr.unpack(raw) as ChainPoint) : { epoch: '', seq: 0, index: 0 }
  }

  /**
   * How the entry at `index` applied here. Only skipped entries are remembered (bounded, read
   * once), so the proposer asks right after its proposal resolves.
   */
  outcome(index: number): EntryOutcome {
    const o = this.outcomes.get(index)
    this.outcomes.delete(index)
    return o ?? { applied: true }
  }

  async apply(entries: Entry[], _group: string, appliedIndex: number): Promise<void> {
    // Entries the store already holds (it was replaced by a newer snapshot) are not re-judged.
    const done = this.store.applied().index
    const decoded = entries
      .filter((e) => e.index > done)
      .map((e) => ({ index: e.index, entry: decode(e.data) }))
    const restore = decoded.find((d) => d.entry?.restore !== undefined)
    if (restore) return this.applyAroundRestore(entries, restore.index, restore.entry!.restore!, appliedIndex)
    const term = entries.length > 0 ? entries[entries.length - 1]!.term : this.store.applied().term
    const start = this.chain
    const accepted: Array<{ index: number; entry: NamespaceEntry }> = []
    for (const { index, entry } of decoded) if (this.advance(index, entry)) accepted.push({ index, entry })
    try {
      await this.store.apply({
        index: appliedIndex,
        term,
        writes: this.withChain(accepted.flatMap((a) => a.entry.writes)),
        modules: accepted.flatMap((a) => (a.entry.module ? [a.entry.module] : [])),
      })
    } catch (e) {
      if (!refused(e)) throw e
      // One entry broke a limit (the leader checks before proposing, so rarely): apply entry by
      // entry, skipping the ones that break it — deterministic on every replica.
      this.chain = start
      accepted.length = 0
      for (const { index, entry } of decoded) {
        const before = this.chain
        if (!this.advance(index, entry)) continue
        try {
          await this.store.apply({
            index,
            term,
            writes: this.withChain(entry.writes),
            modules: entry.module ? [entry.module] : [],
          })
          accepted.push({ index, entry })
        } catch (err) {
          if (!refused(err)) throw err
          this.chain = before
          this.record(index, { applied: false, reason: 'limit', message: (err as Error).message })
        }
      }
      await this.store.apply({ index: appliedIndex, term, writes: [] })
    }
    if (accepted.length > 0) this.hooks.applied?.(this.name, accepted)
  }

  /**
   * Applies `entries` around the restore entry at `index` (docs/backup.md, "Rollback"): the ones
   * before it on the old state, then the staged copy in place of the state with a new chain (no
   * stint computed on the old state continues on the restored one), then the rest on it.
   */
  private async applyAroundRestore(
    entries: Entry[],
    index: number,
    command: RestoreCommand,
    appliedIndex: number,
  ): Promise<void> {
    const at = entries.findIndex((e) => e.index === index)
    await this.apply(entries.slice(0, at), this.name, index - 1)
    this.chain = { epoch: `restore@${index}`, seq: 0, index }
    const term = entries[at]!.term
    await applyRestore(this.store, { index, term }, command, this.withChain([]), this.transfer)
    await this.reload()
    await this.hooks.restored?.(this.name, this, index)
    await this.apply(entries.slice(at + 1), this.name, appliedIndex)
  }

  /** Moves the chain past `entry` if it continues it; records the outcome either way. */
  private advance(index: number, entry: NamespaceEntry | undefined): entry is NamespaceEntry {
    if (!entry) {
      this.record(index, { applied: false, reason: 'sequence', message: 'malformed entry' })
      return false
    }
    const continues =
      entry.epoch === this.chain.epoch
        ? entry.seq === this.chain.seq + 1
        : entry.seq === 1 && entry.base >= this.chain.index
    if (!continues) {
      this.record(index, {
        applied: false,
        reason: 'sequence',
        message: `entry ${entry.epoch}/${entry.seq} does not follow ${this.chain.epoch}/${this.chain.seq}`,
      })
      return false
    }
    this.chain = { epoch: entry.epoch, seq: entry.seq, index }
    return true
  }

  private withChain(writes: StateWrite[]): StateWrite[] {
    return [...writes, { actor: NAMESPACE_META_ACTOR, key: SEQUENCE_KEY, value: packr.pack(this.chain) }]
  }

  private record(index: number, outcome: EntryOutcome): void {
    this.outcomes.set(index, outcome)
    if (this.outcomes.size > this.outcomesMax) this.outcomes.delete(this.outcomes.keys().next().value!)
  }

  /** How many snapshots this replica made (log compactions) and installed (pulled from a peer). */
  snapshotStats(): { made: number; installed: number } {
    return { ...this.snapshotCounts }
  }

  /**
   * For log compaction: only a small marker, because the state lives in the namespace database
   * at the applied index — made durable first (applies are not fsynced one by one: the log they
   * come from is, and it is about to forget them). A replica sent this snapshot pulls the database
   * from the maker (or another replica) instead (see node/namespace-snapshot.ts).
   */
  async snapshot(): Promise<Uint8Array> {
    const { index, term } = await this.store.sync()
    this.snapshotCounts.made++
    return encodeSnapshotMarker({ namespace: this.name, index, term, maker: this.transfer?.self ?? '' })
  }

  /**
   * Installs a copy of the namespace database at `snapshot.meta.index` or later, pulled from a
   * replica, then re-reads the chain point from it. The copy may be newer than the snapshot:
   * `apply` skips the entries it already holds. Nothing to do when the store is already there
   * (a restart over this node's own compacted log).
   */
  async applySnapshot(snapshot: Snapshot, _group: string, options?: { signal?: AbortSignal }): Promise<void> {
    if (this.store.applied().index >= snapshot.meta.index) return
    if (!this.transfer)
      throw new Error(
        `Cannot install a snapshot of namespace '${this.name}' at ${snapshot.meta.index}: no snapshot transfer is configured`,
      )
    await this.transfer.install(this.store, snapshot, options)
    await this.reload()
    this.snapshotCounts.installed++
    await this.hooks.installed?.(this.name, this)
  }
}

/** A write the store refuses by its limits: the entry is skipped, not the group stopped. */
function refused(e: unknown): boolean {
  return e instanceof StorageLimitError || e instanceof StorageQuotaError || e instanceof StorageKeyError
}

function decode(data: Uint8Array): NamespaceEntry | undefined {
  try {
    const e = packr.unpack(data) as NamespaceEntry
    if (
      typeof e?.epoch !== 'string' ||
      !Number.isInteger(e.seq) ||
      !Number.isInteger(e.base) ||
      !Array.isArray(e.writes) ||
      (e.restore !== undefined && !isRestoreCommand(e.restore))
    )
      return undefined
    return e
  } catch {
    return undefined
  }
}
