import { assert } from './assert.js'
import { applyToConf, decodeConfChange, encodeConfChange } from './confchange.js'
import { message, Raft, type RaftConfig } from './core.js'
import { ProposalDroppedError } from './errors.js'
import {
  type BasicStatus,
  type ConfChange,
  type ConfState,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  type ProgressStatus,
  type Ready,
  Role,
  type SoftState,
  type Status,
} from './types.js'

export type { RaftConfig }
export { decodeConfChange, encodeConfChange }

const LOCAL_TYPES: ReadonlySet<MessageType> = new Set([MessageType.Hup, MessageType.Beat])

/**
 * The application's handle on one Raft node, in the style of etcd's `RawNode`: pure and
 * synchronous. Inputs are `tick`, `step`, `propose`, `proposeConfChange`, `readIndex` and
 * `transferLeadership`; the output is a `Ready`, acknowledged with `advance` (see `Ready` for the
 * order in which its parts must be handled).
 */
export class RawNode {
  private readonly raft: Raft
  private prevSoft: SoftState
  private prevHard: HardState
  /** A Ready was handed out and not yet advanced. */
  private pendingReady = false

  constructor(config: RaftConfig) {
    this.raft = new Raft(config)
    this.prevSoft = this.softState()
    this.prevHard = this.hardState()
  }

  /** Advances logical time by one tick (election and heartbeat timeouts count ticks). */
  tick(): void {
    this.raft.tick()
  }

  /** Starts an election now (PreVote first when enabled). */
  campaign(): void {
    this.raft.wake()
    this.raft.step(message({ type: MessageType.Hup, to: this.raft.id, from: this.raft.id }))
  }

  /**
   * Proposes `data` for the log. On a follower the proposal is forwarded to the leader.
   * Throws `ProposalDroppedError` when it cannot be accepted; nothing was written then.
   */
  propose(data: Uint8Array): void {
    this.raft.wake()
    this.raft.step(
      message({
        type: MessageType.Prop,
        to: NONE,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.Normal, data }],
      }),
    )
  }

  /**
   * Proposes several entries as one append (one `App` per follower instead of one per entry). All
   * or nothing: on refusal it throws `ProposalDroppedError` and none was appended.
   */
  proposeBatch(data: Uint8Array[]): void {
    if (data.length === 0) return
    this.raft.wake()
    const entries = data.map((d) => ({ term: 0, index: 0, type: EntryType.Normal, data: d }))
    this.raft.step(message({ type: MessageType.Prop, to: NONE, from: this.raft.id, entries }))
  }

  /** Whether the group is quiesced (cheap; `status()` copies membership and progress). */
  get quiesced(): boolean {
    return this.raft.quiesced
  }

  /** Proposes a membership change; one may be pending at a time (thesis §4.1). */
  proposeConfChange(cc: ConfChange): void {
    if (typeof cc.node !== 'string' || cc.node === NONE) {
      throw new TypeError(`Cannot change membership: node id '${String(cc.node)}' is empty or not a string`)
    }
    if (applyToConf(this.raft.conf, cc).voters.length === 0) {
      // etcd refuses this too: a group without voters can never elect a leader again.
      throw new RangeError(
        `Cannot change membership: removing voter '${cc.node}' would leave the group without voters`,
      )
    }
    this.raft.wake()
    if (this.raft.role !== Role.Leader) {
      throw new ProposalDroppedError(
        'no-leader',
        this.raft.lead,
        'Cannot change membership: this node is not the leader',
      )
    }
    this.raft.step(
      message({
        type: MessageType.Prop,
        to: NONE,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }],
      }),
    )
  }

  /** Applies a committed conf change; call it when applying the ConfChange entry. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc)
  }

  /** Feeds a message from a peer (or a local SnapStatus / Unreachable report). */
  step(m: Message): void {
    if (LOCAL_TYPES.has(m.type)) return // never accepted from the network
    if (m.type === MessageType.Prop || m.type === MessageType.ReadIndex) {
      // Forwarded by a follower: treat as local input of the leader; drops are not our caller's.
      try {
        this.raft.step(m)
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e
      }
      return
    }
    this.raft.step(m)
  }

  /**
   * Requests a linearizable read point. The answer arrives in `Ready.readStates` with the same
   * `context` (which must be unique per request); serve the read once applied ≥ its index.
   */
  readIndex(context: Uint8Array): void {
    this.raft.wake()
    this.raft.step(message({ type: MessageType.ReadIndex, to: NONE, from: this.raft.id, context }))
  }

  /** Asks the leader to hand leadership to `to` (thesis §3.10); also used for graceful shutdown. */
  transferLeadership(to: NodeId): void {
    this.raft.wake()
    this.raft.step(message({ type: MessageType.TransferLeader, to: NONE, from: to }))
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(message({ type: MessageType.Unreachable, to: this.raft.id, from: id }))
  }

  /** Reports how sending a snapshot to `id` went, so its progress can resume. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(message({ type: MessageType.SnapStatus, to: this.raft.id, from: id, reject: !ok }))
  }

  /** Leaves quiescence, e.g. because the node leading this group was declared dead. */
  wake(): void {
    this.raft.wake()
  }

  /**
   * `peer`, this follower's leader, is known to be gone: forget it and campaign soon, in the turn
   * `rotation` gives it among the surviving voters.
   */
  leaderLost(peer: NodeId, rotation?: number): void {
    this.raft.leaderLost(peer, rotation)
  }

  hasReady(): boolean {
    const r = this.raft
    if (r.msgs.length > 0 || r.readStates.length > 0) return true
    if (r.log.unstable.entries.length > 0 || r.log.hasPendingSnapshot()) return true
    if (r.log.hasNextCommittedEntries()) return true
    // Compared field by field: this runs for every group on every turn, so it allocates nothing.
    const soft = this.prevSoft
    const hard = this.prevHard
    if (r.lead !== soft.lead || r.role !== soft.role) return true
    return r.term !== hard.term || r.vote !== hard.vote || r.log.committed !== hard.commit
  }

  /** Everything the application must do now. Call `advance` when it is done. */
  ready(): Ready {
    assert(!this.pendingReady, 'ready() called twice without advance()')
    const r = this.raft
    const soft = this.softState()
    const hard = this.hardState()
    const unstable = r.log.unstable.entries
    const entries = unstable.length === 0 ? [] : unstable.slice()
    const snapshot = r.log.unstable.snapshot
    const early =
      this.prevSoft.role === Role.Leader && soft.role === Role.Leader && hard.term === this.prevHard.term
    const messages = early ? leaderMessagesFirst(r.msgs) : { messages: r.msgs, first: 0 }
    const rd: Ready = {
      entries,
      committedEntries: r.log.nextCommittedEntries(r.maxCommittedBytesPerReady),
      messages: messages.messages,
      sendBeforePersist: messages.first,
      readStates: r.readStates,
      // A received snapshot is acknowledged in this Ready's messages, so it must be durable first.
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        hard.term !== this.prevHard.term ||
        hard.vote !== this.prevHard.vote,
    }
    if (!sameSoft(soft, this.prevSoft)) rd.softState = soft
    if (!sameHard(hard, this.prevHard)) rd.hardState = hard
    if (snapshot) rd.snapshot = snapshot
    r.msgs = []
    r.readStates = []
    this.prevSoft = soft
    this.prevHard = hard
    this.pendingReady = true
    return rd
  }

  /** The application handled `rd`: entries are durable, committed entries applied. */
  advance(rd: Ready): void {
    assert(this.pendingReady, 'advance() without ready()')
    this.pendingReady = false
    const r = this.raft
    if (rd.snapshot) {
      r.log.stableSnapTo(rd.snapshot.meta.index)
      if (rd.snapshot.meta.index > r.log.applied) r.log.applied = rd.snapshot.meta.index
    }
    const last = rd.entries[rd.entries.length - 1]
    if (last) r.log.stableTo(last.index, last.term)
    const applied = rd.committedEntries[rd.committedEntries.length - 1]
    if (applied) {
      r.log.appliedTo(applied.index)
      r.reduceUncommittedBytes(rd.committedEntries)
    }
    // The leader counts its own acknowledgment only once its entries are durable.
    if (r.selfPersisted()) r.broadcastCommit()
  }

  /** Role, term and leader only: for per-call checks, where `status()` would copy membership. */
  basicStatus(): BasicStatus {
    const r = this.raft
    return { id: r.id, term: r.term, lead: r.lead, role: r.role }
  }

  status(): Status {
    const r = this.raft
    const s: Status = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lead: r.lead,
      role: r.role,
      lastIndex: r.log.lastIndex(),
      quiesced: r.quiesced,
      leadTransferee: r.leadTransferee,
      conf: { voters: [...r.conf.voters], learners: [...r.conf.learners] },
    }
    if (r.role === Role.Leader) {
      const progress: Record<NodeId, ProgressStatus> = {}
      for (const [id, pr] of r.prs) progress[id] = pr.status()
      s.progress = progress
    }
    return s
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, role: this.raft.role }
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed }
  }
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.role === b.role
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

/** Messages a leader may send while its own log write is still under way. */
const LEADER_EARLY: ReadonlySet<MessageType> = new Set([
  MessageType.App,
  MessageType.Heartbeat,
  MessageType.Snap,
])

/**
 * A leader's appends, heartbeats and snapshots ahead of everything else in `msgs` (each kind in its
 * order), and how many they are: thesis §10.2.1, the leader writes its log in parallel with
 * replicating it. That is safe because it counts its own acknowledgment only once its entries are
 * durable (`selfPersisted` in `advance`), and these messages carry no vote and no acknowledgment.
 */
function leaderMessagesFirst(msgs: Message[]): { messages: Message[]; first: number } {
  let first = 0
  for (const m of msgs) if (LEADER_EARLY.has(m.type)) first++
  if (first === 0 || first === msgs.length) return { messages: msgs, first }
  const messages = msgs.filter((m) => LEADER_EARLY.has(m.type))
  for (const m of msgs) if (!LEADER_EARLY.has(m.type)) messages.push(m)
  return { messages, first }
}
