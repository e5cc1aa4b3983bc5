import type { MemoryStorage } from '../memory-storage.js'
import { decodeConfChange, RawNode } from '../raft.js'
import {
  type Entry,
  EntryType,
  type Message,
  NONE,
  type NodeId,
  type ReadState,
  type Ready,
  Role,
  type Snapshot,
} from '../types.js'
import { type AppliedRecord, entryKey, type InvariantChecker, InvariantViolation } from './invariants.js'
import { deriveSeed, Prng } from './prng.js'

/** Where in the handling of a Ready a crash strikes (what was done before it survives). */
export type CrashPoint = 'before-persist' | 'after-persist' | 'after-send' | 'mid-apply'

/**
 * Deliberately broken nodes: `forget-vote` never persists its vote (a restart forgets it);
 * `send-before-persist` sends a Ready's messages (votes, append acknowledgments) before persisting
 * it, so a crash in between loses what it acknowledged.
 */
export type BrokenMode = 'forget-vote' | 'send-before-persist'

/** Raft settings a simulated run uses for every node (drawn per seed, see cluster.ts). */
export interface SimRaftSettings {
  electionTicks: number
  heartbeatTicks: number
  preVote: boolean
  checkQuorum: boolean
  readOnly: 'safe' | 'lease'
  maxInflightAppends: number
  maxMessageBytes: number
  maxUncommittedBytes: number
  quiesceAfterTicks: number
}

/** Snapshot policy: how often a node snapshots its state machine, and how much log it keeps. */
export interface SnapshotPolicy {
  everyEntries: number
  keepEntries: number
}

/** What a node's environment gives it: the checker, where to send, and hooks for deliberate bugs. */
export interface SimNodeEnv {
  checker: InvariantChecker
  send(m: Message): void
  onApplied(id: NodeId, e: Entry): void
  onCrash(id: NodeId): void
  onReadState(id: NodeId, rs: ReadState): void
  /** Deliberately broken Ready handling, to prove the checker can fail (see `SimulationOptions.broken`). */
  broken: BrokenMode | undefined
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A snapshot's data: the applied records, so a follower can rebuild its state machine from it. */
export function encodeRecords(records: readonly AppliedRecord[]): Uint8Array {
  return encoder.encode(JSON.stringify(records))
}

/** The inverse of {@link encodeRecords}. */
export function decodeRecords(data: Uint8Array): AppliedRecord[] {
  return data.byteLength === 0 ? [] : (JSON.parse(decoder.decode(data)) as AppliedRecord[])
}

/**
 * One simulated node: its durable state (a `MemoryStorage` and a state machine that persists its
 * applied index together with its records, as a namespace database would) and its volatile
 * `RawNode`, which a crash discards. Ready handling follows the contract: persist, send, apply,
 * advance.
 */
export class SimNode {
  readonly storage: MemoryStorage
  raw: RawNode | undefined
  /** Durable state machine: the applied index and the records of applied entries. */
  appliedIndex = 0
  records: AppliedRecord[] = []
  /** Volatile: the term from the last persisted hard state and whether the node leads. */
  term = 0
  isLeader = false
  incarnation = 0
  readsServed = 0
  snapshotsInstalled = 0
  private pendingReads: number[] = []

  constructor(
    readonly id: NodeId,
    readonly index: number,
    storage: MemoryStorage,
    private readonly seed: number,
    private readonly settings: SimRaftSettings,
    private readonly snapshots: SnapshotPolicy,
    private readonly env: SimNodeEnv,
  ) {
    this.storage = storage
    this.start()
  }

  get up(): boolean {
    return this.raw !== undefined
  }

  /** Starts a RawNode over the persisted state (the first start, or a restart after a crash). */
  start(): void {
    const snap = this.storage.snapshot()
    // A snapshot persisted but not yet applied before the crash: the state machine restores it first.
    if (snap.meta.index > this.appliedIndex) this.restore(snap)
    const hs = this.storage.getHardState()
    if (this.incarnation > 0) this.env.checker.onRestart(this.id, hs, this.storage)
    this.incarnation++
    const random = new Prng(deriveSeed(this.seed, this.index, this.incarnation)).asRandomInt()
    this.raw = new RawNode({
      id: this.id,
      storage: this.storage,
      applied: this.appliedIndex,
      random,
      ...this.settings,
    })
    const commit = this.raw.status().commit
    if (commit < hs.commit) {
      throw new InvariantViolation(
        'commit-monotonic',
        `'${this.id}' restarted at commit ${commit} < ${hs.commit}`,
      )
    }
    this.term = hs.term
    this.isLeader = false
    this.pendingReads = []
  }

  /** Loses everything volatile: the RawNode, its unpersisted entries, pending reads. */
  crash(): void {
    this.raw = undefined
    this.pendingCrash = undefined
    if (this.isLeader) this.env.checker.onRole(this.id, false, this.term, this.storage)
    this.isLeader = false
    this.pendingReads = []
  }

  /** A crash scheduled to strike during the next Ready (its point in the handling). */
  pendingCrash: CrashPoint | undefined

  /** Handles one Ready, crashing at `crashAt` (or a pending crash) if given. Returns false if there was none. */
  handleReady(crashAt: CrashPoint | undefined = this.pendingCrash): boolean {
    const raw = this.raw
    if (raw === undefined || !raw.hasReady()) return false
    const rd = raw.ready()
    if (crashAt !== undefined) this.env.onCrash(this.id)
    // A leader's appends go out before its own write (as the multi-Raft driver sends them), so a
    // crash before persisting leaves followers holding entries the leader lost.
    const early = rd.messages.slice(0, rd.sendBeforePersist)
    for (const m of early) this.env.send(m)
    if (crashAt === 'before-persist') return this.crashed()
    const rest = rd.messages.slice(rd.sendBeforePersist)
    if (this.env.broken === 'send-before-persist') {
      for (const m of rest) this.env.send(m)
      if (crashAt === 'after-send') return this.crashed()
      this.persist(rd)
    } else {
      this.persist(rd)
      if (crashAt === 'after-persist') return this.crashed()
      for (const m of rest) this.env.send(m)
      if (crashAt === 'after-send') return this.crashed()
    }
    if (!this.apply(raw, rd, crashAt === 'mid-apply')) return this.crashed()
    for (const rs of rd.readStates) {
      this.env.onReadState(this.id, rs)
      this.pendingReads.push(rs.index)
    }
    this.serveReads()
    raw.advance(rd)
    this.maybeSnapshot(raw)
    return true
  }

  private crashed(): boolean {
    this.crash()
    return true
  }

  private persist(rd: Ready): void {
    const { storage, env } = this
    // The role first: a second leader in a term is the root cause, its conflicting no-op the symptom.
    if (rd.softState) {
      this.isLeader = rd.softState.role === Role.Leader
      env.checker.onRole(this.id, this.isLeader, rd.hardState?.term ?? this.term, storage)
    }
    if (rd.snapshot) storage.applySnapshot(rd.snapshot)
    storage.append(rd.entries)
    env.checker.onPersistEntries(this.id, rd.entries, storage)
    if (rd.hardState) {
      storage.setHardState(env.broken === 'forget-vote' ? { ...rd.hardState, vote: NONE } : rd.hardState)
      env.checker.onPersistHardState(this.id, rd.hardState, storage)
      this.term = rd.hardState.term
    }
  }

  /** Applies the snapshot and committed entries; with `partial`, stops halfway (returns false). */
  private apply(raw: RawNode, rd: Ready, partial: boolean): boolean {
    if (rd.snapshot) {
      this.restore(rd.snapshot)
      this.snapshotsInstalled++
    }
    const stopAt = partial ? rd.committedEntries.length >> 1 : rd.committedEntries.length
    for (let i = 0; i < stopAt; i++) {
      const e = rd.committedEntries[i]!
      if (e.type === EntryType.ConfChange) raw.applyConfChange(decodeConfChange(e.data))
      const record = { index: e.index, term: e.term, key: entryKey(e) }
      this.env.checker.onApply(this.id, record)
      // Leader no-ops are skipped by the state machine, but their index is applied.
      if (e.data.byteLength > 0) this.records.push(record)
      this.appliedIndex = e.index
      this.env.onApplied(this.id, e)
    }
    return !partial
  }

  private restore(snap: Snapshot): void {
    this.env.checker.onSnapshot(this.id, snap.meta.index, snap.meta.term)
    const records = decodeRecords(snap.data)
    for (const r of records) this.env.checker.onApply(this.id, r)
    this.records = records
    this.appliedIndex = snap.meta.index
  }

  private serveReads(): void {
    if (this.pendingReads.length === 0) return
    const left = this.pendingReads.filter((i) => i > this.appliedIndex)
    this.readsServed += this.pendingReads.length - left.length
    this.pendingReads = left
  }

  /** Snapshots the state machine and compacts the log, keeping a short tail for slow followers. */
  private maybeSnapshot(raw: RawNode): void {
    const snapIndex = this.storage.snapshot().meta.index
    if (this.appliedIndex - snapIndex < this.snapshots.everyEntries) return
    this.storage.createSnapshot(this.appliedIndex, raw.status().conf, encodeRecords(this.records))
    const compactTo = this.appliedIndex - this.snapshots.keepEntries
    if (compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo)
  }
}
