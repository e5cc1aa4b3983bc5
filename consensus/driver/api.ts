/** The public types of the multi-Raft driver. */
import type { Transport } from '../transport.js'
import type {
  BasicStatus,
  ConfChange,
  ConfState,
  Logger,
  LogStore,
  NodeId,
  RandomInt,
  Status,
} from '../types.js'
import type { MultiRaftConfig } from './config.js'
import type { StateMachine } from './group.js'

/** What `createMultiRaft` needs: everything is passed in (STYLE.md §2). */
export interface MultiRaftOptions {
  id: NodeId
  transport: Transport
  logStore: LogStore
  /** Seeded randomness for election timeouts (and the incarnation, unless one is given). */
  random: RandomInt
  /**
   * 8 bytes that differ on every start of this node: they tag its proposals and reads, so an entry
   * proposed before a restart never settles a request made after it. Default: drawn from `random`,
   * which is only right when `random` is seeded differently on each start (a node passes
   * `crypto.randomBytes(8)`; tests that restart a node with the same seed must pass one).
   */
  incarnation?: Uint8Array
  logger?: Logger
  config?: MultiRaftConfig
  /** Runs a turn soon; default `setImmediate`, so input arriving meanwhile joins the same turn. */
  schedule?: (run: () => void) => void
}

/** How to start hosting a group. */
export interface CreateGroupOptions {
  /** Membership of a brand-new group (ignored when the log store already has the group's state). */
  bootstrap?: ConfState
  /**
   * Index the state machine durably applied before a restart (default 0: it keeps nothing). When
   * the log store's snapshot is newer, the driver first installs that snapshot into the state
   * machine (in the background, like any snapshot). It may also be above the log's commit index
   * (the state machine installed a copy newer than the snapshot it was sent): Raft then resumes at
   * the commit index and the state machine must skip the entries it already holds.
   */
  applied?: number
  stateMachine: StateMachine
}

/** Counters for tests, benchmarks and metrics. */
export interface MultiRaftStats {
  groups: number
  activeGroups: number
  ticks: number
  turns: number
  persistCalls: number
  framesSent: number
  messagesSent: number
  /** Messages received for a group this node does not host, or addressed to another node. */
  messagesDropped: number
  /** A turn is running or due. */
  busy: boolean
  /** `propose` calls accepted, and those that failed (dropped, outcome unknown, aborted). */
  proposals: number
  proposalsFailed: number
  /** Times a hosted group's known leader changed (including to none). */
  leaderChanges: number
}

/** A node's Raft groups behind one tick, one log store batch and one frame per peer per turn. */
export interface MultiRaft {
  readonly id: NodeId
  /** One heartbeat interval of logical time for every active group. */
  tick(): void
  createGroup(group: string, options: CreateGroupOptions): void
  /** Stops hosting `group` and deletes its Raft state (the node left the group). */
  removeGroup(group: string, options?: { signal?: AbortSignal }): Promise<void>
  /**
   * Deletes the stored Raft state of `group`, which this node does not host now (say, what an
   * earlier group of the same name left). Throws `RangeError` while the group is hosted.
   */
  dropLog(group: string, options?: { signal?: AbortSignal }): Promise<void>
  /**
   * Proposes `data`; resolves with the entry's index once it is committed and applied here.
   * Rejects with `ProposalDroppedError` (nothing written, retry is safe), `TooManyPendingError`, or
   * `ProposalOutcomeUnknownError` (it may still commit). An abort rejects the promise only: the
   * proposal itself cannot be withdrawn.
   */
  propose(group: string, data: Uint8Array, options?: { signal?: AbortSignal }): Promise<number>
  /**
   * Proposes a membership change on the group's leader; resolves with the new membership once the
   * change is applied here. Rejects with `ProposalDroppedError` (not the leader, a change pending),
   * `RangeError` (it would leave no voter), or `ProposalOutcomeUnknownError`.
   */
  proposeConfChange(group: string, change: ConfChange, options?: { signal?: AbortSignal }): Promise<ConfState>
  /** Resolves when a linearizable read of `group` may be served from this node's state machine. */
  readIndex(group: string, options?: { signal?: AbortSignal }): Promise<void>
  /** Starts an election for `group` on this node now. */
  campaign(group: string): void
  transferLeadership(group: string, to: NodeId): void
  status(group: string): Status
  /** `group`'s role, term and leader as of now, without `status()`'s copies (per-call checks). */
  basicStatus(group: string): BasicStatus
  /**
   * The leader this node knows for `group` (empty if none), as of the last turn. Cheap: for
   * per-heartbeat loops over every group, where `status()` would copy membership and progress.
   */
  leader(group: string): NodeId
  groups(): string[]
  /**
   * Membership declared `peer` dead: wake every group it leads, so their followers elect anew.
   * With `gone` (the caller has proof, e.g. a dropped connection and a failed redial), followers
   * also forget it and campaign within a few ticks instead of a whole election timeout.
   */
  peerDown(peer: NodeId, options?: { gone?: boolean }): void
  stats(): MultiRaftStats
  /** Calls `listener` with the milliseconds from each `propose` to its entry being applied (metrics). */
  onProposalApplied(listener: (ms: number) => void): void
  /** Resolves when no turn is running or due (tests and benchmarks wait on it); snapshot installs run beside turns. */
  whenIdle(options?: { signal?: AbortSignal }): Promise<void>
  /** Rejects everything pending, closes the transport; the log store stays open (its owner closes it). */
  close(): Promise<void>
}
