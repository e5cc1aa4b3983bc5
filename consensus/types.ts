/**
 * The data types and contracts of ActorMesh's Raft. Everything here is plain data so that it can be
 * encoded with msgpackr, persisted by any `Storage`, and compared in tests.
 *
 * Node ids are strings (in the mesh they are libp2p peer id strings). Indexes and terms are
 * JavaScript numbers: 2^53 entries is beyond any cluster's lifetime.
 */

/** A member of a Raft group. */
export type NodeId = string

/** The empty node id: "no leader", "no vote". */
export const NONE: NodeId = ''

/** What an entry carries. A `ConfChange` entry's data is an encoded {@link ConfChange}. */
export const EntryType = {
  Normal: 0,
  ConfChange: 1,
} as const
export type EntryType = (typeof EntryType)[keyof typeof EntryType]

/** One log entry. An entry with empty data at the start of a term is the leader's no-op (§8). */
export interface Entry {
  term: number
  index: number
  type: EntryType
  data: Uint8Array
}

/** What must be durable before a node answers a vote or an append (Figure 2, "persistent state"). */
export interface HardState {
  term: number
  vote: NodeId
  commit: number
}

/**
 * The membership of a group. ActorMesh changes membership one server at a time (thesis §4.1),
 * so there is never an outgoing configuration; learners replicate but do not vote.
 */
export interface ConfState {
  voters: NodeId[]
  learners: NodeId[]
}

/** A membership change, proposed with `proposeConfChange` and applied with `applyConfChange`. */
export interface ConfChange {
  type: ConfChangeType
  node: NodeId
  /** Opaque to Raft: the mesh puts the new member's addresses here. */
  context?: Uint8Array
}

export const ConfChangeType = {
  /** Add (or promote a learner to) a voter. */
  AddNode: 0,
  /** Remove a voter or learner. */
  RemoveNode: 1,
  /** Add a learner, or demote a voter to a learner. */
  AddLearner: 2,
} as const
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType]

/** Where a snapshot sits in the log and the membership at that point. */
export interface SnapshotMeta {
  index: number
  term: number
  conf: ConfState
}

/**
 * A snapshot. `data` is opaque to Raft. For small state machines it is the state itself; for
 * namespaces whose state is a database file it is a small descriptor, and the transport streams
 * the file in chunks beside the `Snap` message (see docs/architecture.md).
 */
export interface Snapshot {
  meta: SnapshotMeta
  data: Uint8Array
}

/** Every message type. Local ones never cross the network. */
export const MessageType = {
  /** Local: start an election now. */
  Hup: 0,
  /** Local: leader, send heartbeats now. */
  Beat: 1,
  /** Local: a proposal; forwarded to the leader by followers. */
  Prop: 2,
  App: 3,
  AppResp: 4,
  Vote: 5,
  VoteResp: 6,
  PreVote: 7,
  PreVoteResp: 8,
  Snap: 9,
  Heartbeat: 10,
  HeartbeatResp: 11,
  /** Local or forwarded: ask the leader to transfer leadership to `from`. */
  TransferLeader: 12,
  /** From the leader to the transferee: campaign now, ignoring the lease (thesis §3.10). */
  TimeoutNow: 13,
  ReadIndex: 14,
  ReadIndexResp: 15,
  /** Local: the application reports how sending a snapshot to `from` went (`reject` = failed). */
  SnapStatus: 16,
  /** Local: the transport could not reach `from`. */
  Unreachable: 17,
} as const
export type MessageType = (typeof MessageType)[keyof typeof MessageType]

/** A Raft message. Unused fields are zero, empty or absent. */
export interface Message {
  type: MessageType
  to: NodeId
  from: NodeId
  term: number
  /** App: term of the entry at `index`. Vote/PreVote: the candidate's last log term. */
  logTerm: number
  /** App: index preceding `entries`. Vote: candidate's last index. AppResp: match or rejected index. */
  index: number
  entries: Entry[]
  commit: number
  reject: boolean
  /** AppResp rejection: the follower's hint for the next probe (its last index or conflict index). */
  rejectHint: number
  snapshot?: Snapshot
  /** ReadIndex / Heartbeat: the read request's context, echoed back. */
  context?: Uint8Array
  /** Heartbeat: the leader asks followers to stop their election timers (quiescence). */
  quiesce?: boolean
}

/** A ReadIndex answer: once the applied index reaches `index`, a read for `context` is linearizable. */
export interface ReadState {
  index: number
  context: Uint8Array
}

/** The volatile role of a node. */
export const Role = {
  Follower: 0,
  Candidate: 1,
  PreCandidate: 2,
  Leader: 3,
} as const
export type Role = (typeof Role)[keyof typeof Role]

/** Lower-case names of the roles, indexed by `Role` (for logs and metrics labels). */
export const ROLE_NAMES = ['follower', 'candidate', 'pre-candidate', 'leader'] as const

/** Volatile state that is useful to the application but never persisted. */
export interface SoftState {
  lead: NodeId
  role: Role
}

/**
 * Output of a node, to be handled in this order (see docs/architecture.md, "Ready ordering"):
 *  1. persist `snapshot`, `entries` and `hardState` (one durable write; `mustSync` says whether an
 *     fsync is needed);
 *  2. send `messages` (they may depend on step 1: a vote or an append acknowledgment);
 *  3. apply `snapshot` (if any) and then `committedEntries` to the state machine, in order;
 *  4. hand `readStates` to waiting readers once applied ≥ their index;
 *  5. call `advance(ready)`.
 */
export interface Ready {
  softState?: SoftState
  hardState?: HardState
  entries: Entry[]
  snapshot?: Snapshot
  committedEntries: Entry[]
  messages: Message[]
  /**
   * How many of `messages`, from the start, may be sent before `entries` and `hardState` are
   * persisted (a leader's appends, heartbeats and snapshots); the rest only after. Sending all of
   * them after persisting is always correct, only slower.
   */
  sendBeforePersist: number
  readStates: ReadState[]
  mustSync: boolean
}

/** The replication state of one follower, as seen by the leader (etcd's Progress). */
export const ProgressState = {
  /** Send one append per heartbeat interval until the follower's match index is found. */
  Probe: 0,
  /** Stream appends optimistically, at most `maxInflightAppends` unacknowledged. */
  Replicate: 1,
  /** A snapshot is on its way; wait for its status. */
  Snapshot: 2,
} as const
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState]

export interface ProgressStatus {
  match: number
  next: number
  state: ProgressState
  recentActive: boolean
  isLearner: boolean
  inflight: number
}

/** What `Status` says about who leads, without membership or progress (cheap: no copies). */
export interface BasicStatus {
  id: NodeId
  term: number
  lead: NodeId
  role: Role
}

/** A snapshot of a node's state for monitoring and tests. */
export interface Status {
  id: NodeId
  term: number
  vote: NodeId
  commit: number
  applied: number
  lead: NodeId
  role: Role
  lastIndex: number
  quiesced: boolean
  leadTransferee: NodeId
  conf: ConfState
  /** Only on the leader. */
  progress?: Record<NodeId, ProgressStatus>
}

/**
 * The read side of a group's durable state, as Raft sees it (etcd's `Storage`). All reads are
 * synchronous: a durable implementation keeps the uncompacted log tail in memory, as etcd's
 * MemoryStorage does beside its WAL, and writes through asynchronously (see `storage/`).
 *
 * Contract (checked by the compliance suite, `test/consensus/storage-compliance.ts`):
 *  - `firstIndex()` is one past the snapshot index; `lastIndex()` ≥ `firstIndex() - 1`.
 *  - `term(i)` answers for `snapshot index ≤ i ≤ lastIndex()`; below that it throws `CompactedError`,
 *    above it throws `UnavailableError`.
 *  - `entries(lo, hi, maxBytes)` returns entries `[lo, hi)`, at least one even if it exceeds
 *    `maxBytes`; `lo < firstIndex()` throws `CompactedError`, `hi > lastIndex() + 1` throws
 *    `UnavailableError`.
 *  - `snapshot()` returns the newest snapshot; an implementation that builds snapshots lazily may
 *    throw `SnapshotTemporarilyUnavailableError`, and Raft retries later.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState }
  entries(lo: number, hi: number, maxBytes: number): Entry[]
  term(index: number): number
  firstIndex(): number
  lastIndex(): number
  snapshot(): Snapshot
}

/**
 * The write side of one group's storage, used by the driver and by tests. A durable
 * implementation makes these durable before the returned promise (or the driver's batch) resolves.
 */
export interface WritableStorage extends Storage {
  /** Append entries, truncating any conflicting suffix first. */
  append(entries: Entry[]): void
  setHardState(hardState: HardState): void
  /** Replace everything with this snapshot (the log is discarded up to and including its index). */
  applySnapshot(snapshot: Snapshot): void
  /** Record a snapshot of the state machine at `index` (≤ applied), for lagging followers. */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot
  /**
   * Discard every entry up to and including `index`, which must not exceed the latest snapshot's
   * index (so a follower that needs a discarded entry can be sent that snapshot). Afterwards
   * `firstIndex() === index + 1` and `term(index)` still answers.
   */
  compact(index: number): void
}

/** Four methods, so that `consensus/` does not depend on pino (STYLE.md §8). */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** A seeded source of randomness: returns an integer in [0, n). */
export type RandomInt = (n: number) => number

/** One group's writes from one `Ready`, persisted by a {@link LogStore}. */
export interface GroupWrite {
  group: string
  hardState?: HardState
  entries: Entry[]
  /** A snapshot received from the leader: replaces the group's log up to its index. */
  snapshot?: Snapshot
}

/**
 * Durable storage for every Raft group of one node (the driver's side of `Storage`). Reads are
 * synchronous through the per-group `Storage` view; writes are batched across groups so that one
 * driver turn costs one transaction and one fsync (group commit).
 *
 * Implementations: `MemoryLogStore` (consensus, for tests and benchmarks) and the LibSQL
 * `raft.db` store (storage/). Both pass `test/consensus/log-store-compliance.ts`.
 */
export interface LogStore {
  /**
   * The read side of `group`. A group that does not exist yet is created empty; `bootstrap` gives
   * a brand-new group its initial membership (ignored for a group that already has state).
   */
  open(group: string, bootstrap?: ConfState): Storage
  /** Every group this store holds state for (to restart them after a crash). */
  groups(): string[]
  /**
   * Makes every write durable in one transaction with one fsync. When the promise resolves, the
   * groups' `Storage` views reflect the writes. If it rejects, nothing in the batch was written.
   */
  /**
   * Writes the batch. With `sync` (the default) it is durable when this resolves; without, it
   * must survive a process crash but may be lost on power loss (the Ready had no `mustSync`).
   */
  persist(writes: GroupWrite[], options?: { signal?: AbortSignal; sync?: boolean }): Promise<void>
  /**
   * Records a snapshot of `group`'s state machine at `index` (≤ applied) and discards log entries
   * before `index - keepEntries` (a tail is kept so slightly lagging followers need no snapshot).
   */
  snapshot(
    group: string,
    index: number,
    conf: ConfState,
    data: Uint8Array,
    keepEntries: number,
    options?: { signal?: AbortSignal },
  ): Promise<Snapshot>
  /** Deletes all of `group`'s state (the node left the group). */
  drop(group: string, options?: { signal?: AbortSignal }): Promise<void>
  close(): Promise<void>
}
