import { assert } from './assert.js'
import { applyToConf, decodeConfChange } from './confchange.js'
import { ProposalDroppedError } from './errors.js'
import { cloneConf } from './memory-storage.js'
import { Progress } from './progress.js'
import { RaftLog } from './raft-log.js'
import { ReadOnly } from './read-only.js'
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type Logger,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  ProgressState,
  type RandomInt,
  type ReadState,
  Role,
  type Snapshot,
  type Storage,
} from './types.js'

/** Configuration of one Raft node. Limits carry their unit last (STYLE.md §7). */
export interface RaftConfig {
  id: NodeId
  storage: Storage
  /** Index the state machine had durably applied before a restart (default: the snapshot index). */
  applied?: number
  /** Election timeout, in ticks; the actual timeout is randomised in [electionTicks, 2 × electionTicks). */
  electionTicks?: number
  heartbeatTicks?: number
  /**
   * Ticks a leader waits for a follower to acknowledge a snapshot before it assumes the snapshot
   * (or the answer) was lost and probes again; default 10 election timeouts.
   */
  snapshotTimeoutTicks?: number
  preVote?: boolean
  checkQuorum?: boolean
  /** 'safe': ReadIndex with a heartbeat round; 'lease': answer from the leader lease (needs CheckQuorum). */
  readOnly?: 'safe' | 'lease'
  maxInflightAppends?: number
  maxMessageBytes?: number
  maxUncommittedBytes?: number
  maxCommittedBytesPerReady?: number
  /** Read requests a leader holds before its first commit in the term or while confirming. */
  maxPendingReads?: number
  /** An idle, fully replicated leader quiesces the group after this many ticks; 0 = never. */
  quiesceAfterTicks?: number
  tickPhase?: number
  random: RandomInt
  logger?: Logger
}

/** The context of a Vote sent because of a leadership transfer: it may break the lease (§3.10). */
const CAMPAIGN_TRANSFER = new Uint8Array([0x74, 0x72, 0x61, 0x6e, 0x73, 0x66, 0x65, 0x72])

const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

function isTransfer(context: Uint8Array | undefined): boolean {
  if (!context || context.byteLength !== CAMPAIGN_TRANSFER.byteLength) return false
  return context.every((b, i) => b === CAMPAIGN_TRANSFER[i])
}

/** A message with every field zeroed; callers fill in what they use. */
export function message(fields: Partial<Message> & Pick<Message, 'type' | 'to'>): Message {
  return {
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  }
}

/**
 * The Raft state machine (Ongaro & Ousterhout, "In Search of an Understandable Consensus
 * Algorithm", and Ongaro's thesis), structured like etcd's `raft.go`: every input is a `step` or a
 * `tick`; outputs accumulate in `msgs` and `readStates` for `RawNode` to hand out.
 */
export class Raft {
  readonly id: NodeId
  readonly log: RaftLog
  term = 0
  vote: NodeId = NONE
  lead: NodeId = NONE
  role: Role = Role.Follower
  conf: ConfState
  prs = new Map<NodeId, Progress>()
  votes = new Map<NodeId, boolean>()
  msgs: Message[] = []
  readStates: ReadState[] = []
  leadTransferee: NodeId = NONE
  /** Index of the newest conf change the leader appended; another waits until it is applied. */
  pendingConfIndex = 0
  uncommittedBytes = 0
  quiesced = false
  tickCount: number
  electionElapsed = 0
  private randomizedElectionTimeout = 0
  private idleTicks = 0
  /**
   * Whether this node's membership came from a bootstrap or a snapshot. A node created with no
   * membership at all can only rebuild it from conf changes in the log, which miss the initial
   * members, so it must never campaign on that (it would count only the members it saw added).
   */
  private confInitialized: boolean
  /** Ticks left during which a restarted node refuses votes as if in a lease (see `stepHigherTerm`). */
  private restartGuardTicks = 0
  private readonly readOnly = new ReadOnly()
  /** ReadIndex requests that arrived before the leader committed an entry of its term (§6.4). */
  private pendingReadIndex: Message[] = []

  readonly electionTicks: number
  readonly heartbeatTicks: number
  readonly preVote: boolean
  readonly checkQuorum: boolean
  readonly readOnlyOption: 'safe' | 'lease'
  readonly maxInflightAppends: number
  private readonly snapshotTimeoutTicks: number
  readonly maxMessageBytes: number
  readonly maxUncommittedBytes: number
  readonly maxCommittedBytesPerReady: number
  readonly maxPendingReads: number
  readonly quiesceAfterTicks: number
  private readonly random: RandomInt
  readonly logger: Logger

  constructor(config: RaftConfig) {
    this.id = config.id
    assert(this.id !== NONE, 'Raft id must not be empty')
    this.electionTicks = config.electionTicks ?? 10
    this.heartbeatTicks = config.heartbeatTicks ?? 1
    if (this.heartbeatTicks <= 0)
      throw new RangeError(`heartbeatTicks must be positive, got ${this.heartbeatTicks}`)
    if (this.electionTicks <= this.heartbeatTicks) {
      throw new RangeError(
        `electionTicks (${this.electionTicks}) must exceed heartbeatTicks (${this.heartbeatTicks})`,
      )
    }
    this.preVote = config.preVote ?? true
    this.checkQuorum = config.checkQuorum ?? true
    this.readOnlyOption = config.readOnly ?? 'safe'
    if (this.readOnlyOption === 'lease' && !this.checkQuorum) {
      throw new RangeError(
        "readOnly 'lease' requires checkQuorum: a lease is only safe if a cut-off leader steps down",
      )
    }
    this.maxInflightAppends = config.maxInflightAppends ?? 256
    this.snapshotTimeoutTicks = config.snapshotTimeoutTicks ?? 10 * this.electionTicks
    this.maxMessageBytes = config.maxMessageBytes ?? 1 << 20
    this.maxUncommittedBytes = config.maxUncommittedBytes ?? 64 << 20
    this.maxCommittedBytesPerReady = config.maxCommittedBytesPerReady ?? 16 << 20
    this.maxPendingReads = config.maxPendingReads ?? 65_536
    this.quiesceAfterTicks = config.quiesceAfterTicks ?? 0
    this.tickCount = config.tickPhase ?? 0
    this.random = config.random
    this.logger = config.logger ?? silentLogger

    this.log = new RaftLog(config.storage)
    const { hardState, confState } = config.storage.initialState()
    this.conf = cloneConf(confState)
    this.confInitialized = confState.voters.length > 0 || confState.learners.length > 0
    this.term = hardState.term
    this.vote = hardState.vote
    if (hardState.commit > 0) this.log.commitTo(hardState.commit)
    const applied = config.applied ?? 0
    if (applied > this.log.applied) {
      assert(applied <= this.log.committed, () => `applied ${applied} is beyond commit ${this.log.committed}`)
      this.replayConfChanges(this.log.applied + 1, applied)
      this.log.appliedTo(applied)
    }
    this.becomeFollower(this.term, NONE)
    // Only lease reads rely on the promise, and a node that never had a term promised nothing.
    if (this.readOnlyOption === 'lease' && hardState.term > 0) this.restartGuardTicks = this.electionTicks
  }

  /** Membership at restart = snapshot membership + conf changes already applied (see `applied`). */
  private replayConfChanges(lo: number, hi: number): void {
    for (const e of this.log.slice(lo, hi + 1, Number.MAX_SAFE_INTEGER)) {
      if (e.type === EntryType.ConfChange) this.conf = applyToConf(this.conf, decodeConfChange(e.data))
    }
  }

  // ---- roles -----------------------------------------------------------------------------------

  /** Whether this node may become leader: only voters campaign (learners never do). */
  promotable(): boolean {
    return this.confInitialized && this.conf.voters.includes(this.id)
  }

  quorum(): number {
    return Math.floor(this.conf.voters.length / 2) + 1
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term
      this.vote = NONE
    }
    this.lead = NONE
    this.electionElapsed = 0
    this.randomizedElectionTimeout = this.electionTicks + this.random(this.electionTicks)
    this.leadTransferee = NONE
    this.votes.clear()
    this.pendingConfIndex = 0
    this.uncommittedBytes = 0
    this.readOnly.reset()
    this.pendingReadIndex = []
    this.quiesced = false
    this.idleTicks = 0
    this.rebuildProgress()
  }

  /** One progress per member; the leader's own `match` is its durable last index. */
  rebuildProgress(): void {
    const previous = this.prs
    this.prs = new Map()
    const last = this.log.lastIndex()
    const add = (id: NodeId, isLearner: boolean) => {
      const pr = previous.get(id) ?? new Progress(last + 1, this.maxInflightAppends, isLearner)
      pr.isLearner = isLearner
      if (!previous.has(id)) pr.recentActive = true
      this.prs.set(id, pr)
    }
    for (const id of this.conf.voters) add(id, false)
    for (const id of this.conf.learners) add(id, true)
  }

  private resetAllProgress(): void {
    const last = this.log.lastIndex()
    for (const [id, pr] of this.prs) {
      const fresh = new Progress(last + 1, this.maxInflightAppends, pr.isLearner)
      if (id === this.id) fresh.match = this.log.lastStableIndex()
      this.prs.set(id, fresh)
    }
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term)
    this.role = Role.Follower
    this.lead = lead
  }

  private becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'leader cannot become candidate')
    this.reset(this.term + 1)
    this.vote = this.id
    this.role = Role.Candidate
  }

  /** PreVote (thesis §9.6): campaign without bumping our term, so a partitioned node cannot disrupt. */
  private becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'leader cannot become pre-candidate')
    this.votes.clear()
    this.lead = NONE
    this.role = Role.PreCandidate
  }

  private becomeLeader(): void {
    assert(this.role !== Role.Follower, 'follower cannot become leader without an election')
    this.reset(this.term)
    this.resetAllProgress()
    this.lead = this.id
    this.role = Role.Leader
    this.prs.get(this.id)?.becomeReplicate()
    // §8: a new leader commits a no-op of its own term, which also commits earlier terms' entries.
    // Conf changes wait until it is applied (Ongaro's fix for single-server changes, raft-dev 2015).
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array() }])
    this.pendingConfIndex = this.log.lastIndex()
    this.logger.info({ term: this.term }, 'became leader')
  }

  // ---- ticks -----------------------------------------------------------------------------------

  tick(): void {
    this.tickCount++
    if (this.restartGuardTicks > 0) this.restartGuardTicks--
    if (this.quiesced) return
    if (this.role === Role.Leader) this.tickLeader()
    else this.tickElection()
  }

  private tickElection(): void {
    this.electionElapsed++
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.hup(false)
    }
  }

  private tickLeader(): void {
    this.electionElapsed++
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0
      // §6.2 CheckQuorum: a leader that has not heard from a quorum in an election timeout steps down.
      if (this.checkQuorum && !this.quorumActive()) {
        this.logger.warn({ term: this.term }, 'stepping down: no quorum contact for an election timeout')
        this.becomeFollower(this.term, NONE)
        return
      }
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE // transfer timed out (§3.10)
      this.expireSnapshots()
    }
    this.maybeQuiesce()
    // Periodic heartbeats carry the newest pending read's context, so a read whose own round was
    // lost is confirmed by the next one (with every read queued before it).
    if (!this.quiesced && this.tickCount % this.heartbeatTicks === 0) {
      this.broadcastHeartbeat(this.readOnly.lastPendingContext())
    }
  }

  /**
   * A snapshot message or its acknowledgment can be lost, and nothing else ever moves a follower
   * out of Snapshot state: after `snapshotTimeoutTicks` the leader treats it as failed and probes
   * again (a follower that did install it answers the probe with its new index).
   */
  private expireSnapshots(): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id || pr.state !== ProgressState.Snapshot) continue
      if (this.tickCount - pr.snapshotSentTick < this.snapshotTimeoutTicks) continue
      this.logger.warn(
        { peer: id, index: pr.pendingSnapshot },
        'snapshot not acknowledged in time; probing again',
      )
      pr.pendingSnapshot = 0
      pr.becomeProbe()
    }
  }

  /** Counts voters heard from since the last check (the leader counts itself), then clears them. */
  private quorumActive(): boolean {
    let active = 0
    for (const [id, pr] of this.prs) {
      if (id === this.id) {
        if (!pr.isLearner) active++
        continue
      }
      if (pr.recentActive && !pr.isLearner) active++
      pr.recentActive = false
    }
    return active >= this.quorum()
  }

  // ---- quiescence ------------------------------------------------------------------------------

  /** Whether the group is fully idle: everything replicated, committed and applied everywhere. */
  private idle(): boolean {
    const last = this.log.lastIndex()
    if (this.log.committed !== last || this.log.applied !== last) return false
    if (this.leadTransferee !== NONE || this.readOnly.size > 0 || this.pendingReadIndex.length > 0)
      return false
    for (const pr of this.prs.values()) {
      if (pr.match !== last) return false
    }
    return true
  }

  private maybeQuiesce(): void {
    if (this.quiesceAfterTicks <= 0) return
    if (!this.idle()) {
      this.idleTicks = 0
      return
    }
    if (++this.idleTicks < this.quiesceAfterTicks) return
    // Followers stop their election timers on this heartbeat. The lease is dropped: quiesced ticks
    // do not count time, so a lease read after waking must first hear from a quorum again.
    for (const id of this.prs.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, undefined, true)
    }
    for (const pr of this.prs.values()) pr.lastAckTick = Number.NEGATIVE_INFINITY
    this.quiesced = true
    this.idleTicks = 0
  }

  /** Leaves quiescence: the election timer (or the leader's heartbeats) restart from zero. */
  wake(): void {
    if (!this.quiesced) return
    this.quiesced = false
    this.electionElapsed = 0
    this.idleTicks = 0
  }

  /**
   * The application learned that `peer`, which this follower follows, is gone (its connection
   * dropped and a redial failed). The follower forgets it — so it grants pre-votes at once instead
   * of protecting a leader it can no longer hear — and campaigns within a few ticks instead of
   * after a whole election timeout. Ignored in lease mode: there a follower's silence is a promise
   * the leader relies on.
   *
   * When: the surviving voters take turns two ticks apart, in an order every one of them computes
   * alike — sorted ids rotated by `rotation` (the driver passes a hash of the group's name) — so
   * the first asks for votes while the others still wait, and they grant them instead of
   * splitting the vote (§9.3: a split costs a whole randomized timeout; a random
   * 1..electionTicks/2 tick, as before, made two followers pick the same tick about one time in
   * five, and a failover then took ~1.7 s instead of ~0.3 s). Rotating per group spreads a dead
   * node's groups over the survivors instead of handing all of them to the lowest id. A first in
   * line that cannot win (a shorter log) only delays the next.
   */
  leaderLost(peer: NodeId, rotation = 0): void {
    if (this.role !== Role.Follower || this.lead !== peer || this.readOnlyOption === 'lease') return
    this.wake()
    this.lead = NONE
    const soon = 1 + 2 * this.rankAmongSurvivors(peer, rotation) + this.random(2)
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - soon)
  }

  /** This node's turn among the voters other than `gone`, their sorted order rotated by `rotation`. */
  private rankAmongSurvivors(gone: NodeId, rotation: number): number {
    const order = this.conf.voters.filter((v) => v !== gone).sort()
    const at = order.indexOf(this.id)
    if (at < 0) return 0
    const shift = Math.abs(Math.trunc(rotation)) % order.length
    return (at - shift + order.length) % order.length
  }

  // ---- elections (§5.2) ------------------------------------------------------------------------

  /** Starts an election unless this node leads, cannot vote, or has an unapplied conf change. */
  hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return
    if (this.hasUnappliedConfChange()) {
      this.logger.warn({ term: this.term }, 'not campaigning: a committed conf change is not applied yet')
      return
    }
    if (this.preVote && !transfer) this.campaign(true, false)
    else this.campaign(false, transfer)
  }

  private hasUnappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applied || this.log.hasPendingSnapshot()) return false
    const ents = this.log.slice(this.log.applied + 1, this.log.committed + 1, Number.MAX_SAFE_INTEGER)
    return ents.some((e) => e.type === EntryType.ConfChange)
  }

  private campaign(pre: boolean, transfer: boolean): void {
    let term: number
    let type: MessageType
    if (pre) {
      this.becomePreCandidate()
      type = MessageType.PreVote
      term = this.term + 1 // the term we would campaign in; ours stays unchanged
    } else {
      this.becomeCandidate()
      type = MessageType.Vote
      term = this.term
    }
    if (this.poll(this.id, true) === 'won') {
      if (pre) this.campaign(false, transfer)
      else this.becomeLeader()
      return
    }
    for (const id of this.conf.voters) {
      if (id === this.id) continue
      this.send(
        message({
          type,
          to: id,
          term,
          index: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          context: transfer ? CAMPAIGN_TRANSFER : undefined,
        }),
      )
    }
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted)
    let yes = 0
    let no = 0
    for (const voter of this.conf.voters) {
      const v = this.votes.get(voter)
      if (v === true) yes++
      else if (v === false) no++
    }
    if (yes >= this.quorum()) return 'won'
    if (no > this.conf.voters.length - this.quorum()) return 'lost'
    return 'pending'
  }

  // ---- step ------------------------------------------------------------------------------------

  /** Handles every message: the term rules of Figure 2 ("All servers"), then the role's rules. */
  step(m: Message): void {
    if (this.quiesced && this.wakesOn(m)) this.wake()
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return
    } else if (m.term < this.term && m.term !== 0) {
      this.stepLowerTerm(m)
      return
    }
    switch (m.type) {
      case MessageType.Hup:
        this.hup(false)
        return
      case MessageType.Vote:
      case MessageType.PreVote:
        this.stepVote(m)
        return
    }
    if (this.role === Role.Leader) this.stepLeader(m)
    else if (this.role === Role.Follower) this.stepFollower(m)
    else this.stepCandidate(m)
  }

  /** Quiescence ends on anything but the quiesce heartbeat itself and plain heartbeat answers. */
  private wakesOn(m: Message): boolean {
    if (m.type === MessageType.Heartbeat && m.quiesce) return false
    if (m.type === MessageType.HeartbeatResp && !m.context) return false
    return true
  }

  /** Returns false when the message must be dropped. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      // Thesis §4.2.3: while a follower hears from a live leader it ignores votes, so a removed or
      // partitioned server cannot depose it. A transfer's vote is exempt: the leader asked for it.
      // A node that restarted may have acknowledged a leader just before it went down, and that
      // leader may still serve lease reads: it keeps the promise for an election timeout after
      // starting, since it cannot know when it last heard from a leader.
      const restarting = this.restartGuardTicks > 0
      const inLease =
        this.checkQuorum &&
        !this.quiesced &&
        (restarting || (this.lead !== NONE && this.electionElapsed < this.electionTicks)) &&
        !isTransfer(m.context)
      if (inLease) return false
    }
    if (m.type === MessageType.PreVote) return true // never change term for a pre-vote
    if (m.type === MessageType.PreVoteResp && !m.reject) return true // we bump the term when we win
    const fromLeader =
      m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap
    this.becomeFollower(m.term, fromLeader ? m.from : NONE)
    return true
  }

  private stepLowerTerm(m: Message): void {
    if (
      (this.checkQuorum || this.preVote) &&
      (m.type === MessageType.Heartbeat || m.type === MessageType.App)
    ) {
      // A stale leader (e.g. after a partition healed) learns our term from this and steps down;
      // otherwise, with PreVote, it could keep its followers from ever electing anyone.
      this.send(message({ type: MessageType.AppResp, to: m.from }))
    } else if (m.type === MessageType.PreVote) {
      this.send(message({ type: MessageType.PreVoteResp, to: m.from, reject: true }))
    }
  }

  /** §5.2, §5.4.1: one vote per term, only for a candidate whose log is at least as up to date. */
  private stepVote(m: Message): void {
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === MessageType.PreVote && m.term > this.term)
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send(message({ type: respType, to: m.from, term: m.term }))
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0
        this.vote = m.from
      }
    } else {
      this.send(message({ type: respType, to: m.from, reject: true }))
    }
  }

  private stepCandidate(m: Message): void {
    const myResp = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp
    switch (m.type) {
      case MessageType.Prop:
        throw new ProposalDroppedError('no-leader', NONE, 'Cannot propose: an election is in progress')
      case MessageType.App:
        this.becomeFollower(m.term, m.from)
        this.handleAppend(m)
        return
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from)
        this.handleHeartbeat(m)
        return
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from)
        this.handleSnapshot(m)
        return
      case MessageType.ReadIndex:
        if (m.from === this.id)
          throw new ProposalDroppedError('no-leader', NONE, 'Cannot serve: an election is in progress')
        return
      case myResp: {
        const result = this.poll(m.from, !m.reject)
        if (result === 'won') {
          if (this.role === Role.PreCandidate) this.campaign(false, false)
          else {
            this.becomeLeader()
            this.broadcastAppend()
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.term, NONE)
        }
        return
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE)
          throw new ProposalDroppedError('no-leader', NONE, 'Cannot propose: no leader is known')
        this.send({ ...m, to: this.lead })
        return
      case MessageType.App:
        this.electionElapsed = 0
        this.lead = m.from
        this.handleAppend(m)
        return
      case MessageType.Heartbeat:
        this.electionElapsed = 0
        this.lead = m.from
        this.handleHeartbeat(m)
        return
      case MessageType.Snap:
        this.electionElapsed = 0
        this.lead = m.from
        this.handleSnapshot(m)
        return
      case MessageType.TransferLeader:
      case MessageType.ReadIndex:
        if (this.lead === NONE) {
          if (m.from === this.id)
            throw new ProposalDroppedError('no-leader', NONE, 'Cannot serve: no leader is known')
          return
        }
        this.send({ ...m, to: this.lead })
        return
      case MessageType.TimeoutNow:
        // §3.10: the leader asks us to take over; campaign at once, skipping PreVote and the lease.
        this.hup(true)
        return
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context ?? new Uint8Array() })
        return
    }
  }

  // ---- follower handlers -----------------------------------------------------------------------

  /** Figure 2, AppendEntries receiver. Rejections carry a hint so the leader can skip a term. */
  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }))
      return
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries)
    if (lastNew >= 0) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: lastNew }))
      return
    }
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm)
    this.send(
      message({
        type: MessageType.AppResp,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    )
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()))
    if (m.quiesce && this.log.lastIndex() === m.commit && this.log.committed === m.commit)
      this.quiesced = true
    this.send(message({ type: MessageType.HeartbeatResp, to: m.from, context: m.context }))
  }

  /** InstallSnapshot (§7): adopt the snapshot unless our log already covers it. */
  private handleSnapshot(m: Message): void {
    const s = m.snapshot!
    if (this.restore(s)) {
      this.logger.info({ index: s.meta.index, term: s.meta.term }, 'restored snapshot')
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }))
    } else {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }))
    }
  }

  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // Our log already holds the snapshot's last entry: just move commit forward (§7).
      this.log.commitTo(s.meta.index)
      return false
    }
    this.log.restore(s)
    this.conf = cloneConf(s.meta.conf)
    if (s.meta.conf.voters.length > 0) this.confInitialized = true
    this.rebuildProgress()
    return true
  }

  // ---- leader ----------------------------------------------------------------------------------

  /**
   * Appends entries to the leader's log, enforcing the uncommitted-bytes bound; returns the index
   * given to the first entry.
   */
  appendEntries(entries: Entry[]): number {
    let bytes = 0
    for (const e of entries) bytes += e.data.byteLength
    if (this.uncommittedBytes > 0 && bytes > 0 && this.uncommittedBytes + bytes > this.maxUncommittedBytes) {
      throw new ProposalDroppedError(
        'uncommitted-bytes',
        this.id,
        `Cannot propose: ${this.uncommittedBytes + bytes} uncommitted bytes would exceed maxUncommittedBytes ${this.maxUncommittedBytes}`,
      )
    }
    // New entry objects: a proposal's entries may be shared (a transport that delivers a message
    // twice by reference), and one object must never sit in the log at two indexes.
    let index = this.log.lastIndex()
    const own = entries.map((e) => ({ term: this.term, index: ++index, type: e.type, data: e.data }))
    this.log.append(own)
    this.uncommittedBytes += bytes
    return own[0]!.index
  }

  /** The committed entries were handed to the application: they no longer count as uncommitted. */
  reduceUncommittedBytes(entries: Entry[]): void {
    if (this.role !== Role.Leader) return
    let bytes = 0
    for (const e of entries) bytes += e.data.byteLength
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes)
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.broadcastHeartbeat()
        return
      case MessageType.Prop:
        this.stepPropose(m)
        return
      case MessageType.ReadIndex:
        this.stepReadIndex(m)
        return
      case MessageType.TransferLeader:
        this.stepTransfer(m.from)
        return
    }
    const pr = this.prs.get(m.from)
    if (!pr) return // not a member (any more)
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr)
        return
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m, pr)
        return
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return
        if (m.reject) pr.pendingSnapshot = 0
        pr.becomeProbe()
        // Wait for the follower's AppResp (or the next heartbeat) before probing again.
        pr.probeSent = true
        return
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe()
        return
    }
  }

  private stepPropose(m: Message): void {
    assert(m.entries.length > 0, 'empty proposal')
    if (this.leadTransferee !== NONE) {
      throw new ProposalDroppedError(
        'transferring',
        this.leadTransferee,
        'Cannot propose: leadership is being transferred',
      )
    }
    const confAt = m.entries.findIndex((e) => e.type === EntryType.ConfChange)
    if (confAt >= 0 && this.pendingConfIndex > this.log.applied) {
      throw new ProposalDroppedError(
        'pending-conf-change',
        this.id,
        'Cannot change membership: an earlier change is not applied yet',
      )
    }
    const first = this.appendEntries(m.entries)
    if (confAt >= 0) this.pendingConfIndex = first + confAt
    this.broadcastAppend()
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true
    pr.lastAckTick = this.tickCount
    if (m.reject) {
      let next = m.rejectHint
      if (m.logTerm > 0) next = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index
      if (pr.maybeDecrTo(m.index, next)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe()
        this.sendAppend(m.from, true)
      }
      return
    }
    const wasPaused = pr.isPaused()
    if (!pr.maybeUpdate(m.index)) return
    if (pr.state === ProgressState.Probe) pr.becomeReplicate()
    else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe()
      pr.becomeReplicate()
    } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index)

    if (this.maybeCommit()) this.broadcastCommit()
    else if (wasPaused) this.sendAppend(m.from, false)
    while (this.sendAppend(m.from, false)) {}
    if (pr.state === ProgressState.Replicate) this.tellCommit(m.from, pr)
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send(message({ type: MessageType.TimeoutNow, to: m.from }))
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true
    pr.lastAckTick = this.tickCount
    pr.probeSent = false
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne()
    // A follower that is behind may have lost an append while in Replicate state (where `next`
    // is already past it). An append at `next - 1`, empty if need be, makes it answer: either it
    // acknowledges, or it rejects and the leader backs off to probing and resends (§5.5).
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true)
    // Acks count in both read modes (lease mode falls back to a heartbeat round when its lease has
    // run out), but only voters' acks: a learner's says nothing about who could be elected.
    if (!m.context || pr.isLearner) return
    const acks = this.readOnly.recvAck(m.from, m.context)
    if (acks < this.quorum()) return
    for (const done of this.readOnly.advance(m.context)) this.answerRead(done.request, done.index)
  }

  /** Commits the highest index replicated on a quorum of voters, if it is of our term (§5.4.2). */
  maybeCommit(): boolean {
    const matches: number[] = []
    for (const id of this.conf.voters) matches.push(this.prs.get(id)?.match ?? 0)
    if (matches.length === 0) return false
    matches.sort((a, b) => b - a)
    const committed = this.log.maybeCommit(matches[this.quorum() - 1]!, this.term)
    if (committed) this.releasePendingReadIndex()
    return committed
  }

  /** The leader persisted its log up to `index`: that counts as its own acknowledgment. */
  selfPersisted(): boolean {
    if (this.role !== Role.Leader) return false
    const pr = this.prs.get(this.id)
    if (!pr) return false
    pr.lastAckTick = this.tickCount
    if (!pr.maybeUpdate(this.log.lastStableIndex())) return false
    return this.maybeCommit()
  }

  private stepTransfer(to: NodeId): void {
    const pr = this.prs.get(to)
    if (!pr || pr.isLearner || to === this.id) return
    if (this.leadTransferee === to) return
    this.leadTransferee = to
    this.electionElapsed = 0 // the transfer must finish within one election timeout (§3.10)
    if (pr.match === this.log.lastIndex()) this.send(message({ type: MessageType.TimeoutNow, to }))
    else this.sendAppend(to, true)
  }

  // ---- reads (§6.4) ----------------------------------------------------------------------------

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term
  }

  private stepReadIndex(m: Message): void {
    if (!this.committedInCurrentTerm()) {
      if (this.pendingReadIndex.length >= this.maxPendingReads) return
      this.pendingReadIndex.push(m)
      return
    }
    this.serveReadIndex(m)
  }

  private serveReadIndex(m: Message): void {
    // A sole voter is the quorum: no other leader can exist, so its commit index is current. A
    // transfer breaks the lease on purpose (the transferee's vote request overrides followers'
    // promises), so while one is under way reads take the heartbeat round.
    const lease = this.readOnlyOption === 'lease' && this.leadTransferee === NONE && this.leaseValid()
    if (this.conf.voters.length === 1 || lease) {
      this.answerRead(m, this.log.committed)
      return
    }
    if (this.readOnly.size >= this.maxPendingReads || this.readOnly.has(m.context!)) return
    this.readOnly.add(this.log.committed, m, this.id)
    this.broadcastHeartbeat(m.context)
  }

  private releasePendingReadIndex(): void {
    if (this.pendingReadIndex.length === 0 || !this.committedInCurrentTerm()) return
    const pending = this.pendingReadIndex
    this.pendingReadIndex = []
    for (const m of pending) this.serveReadIndex(m)
  }

  /**
   * The lease (thesis §6.4.1) holds while a quorum acknowledged us recently: followers ignore
   * votes for an election timeout after hearing from us (see `stepHigherTerm`). An
   * acknowledgment arrives after the follower's timer restarted, so two ticks of margin cover a
   * round trip shorter than a tick; like every lease, it assumes tick rates drift little.
   */
  private leaseValid(): boolean {
    let fresh = 0
    for (const id of this.conf.voters) {
      const pr = this.prs.get(id)
      if (id === this.id || (pr && this.tickCount - pr.lastAckTick < this.electionTicks - 2)) fresh++
    }
    return fresh >= this.quorum()
  }

  private answerRead(request: Message, index: number): void {
    const context = request.context ?? new Uint8Array()
    if (request.from === NONE || request.from === this.id) this.readStates.push({ index, context })
    else this.send(message({ type: MessageType.ReadIndexResp, to: request.from, index, context }))
  }

  // ---- sending ---------------------------------------------------------------------------------

  send(m: Message): void {
    if (m.from === NONE) m.from = this.id
    if (m.term === 0 && m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex) {
      if (m.type !== MessageType.TransferLeader) m.term = this.term
    }
    this.msgs.push(m)
  }

  broadcastAppend(): void {
    for (const id of this.prs.keys()) {
      if (id !== this.id) this.sendAppend(id, true)
    }
  }

  /**
   * Tells the followers about a commit index that just advanced. A follower with entries to
   * receive gets them, carrying the index. One that holds the committed entries gets a heartbeat
   * instead of etcd's empty append: the heartbeat's answer is held for the next frame to the
   * leader (the driver's outbox), where an append's must go at once and costs a frame. One whose
   * appends are still in flight is told when it acknowledges them (`tellCommit`). A probed
   * follower gets the empty append, as before.
   */
  broadcastCommit(): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue
      if (pr.state !== ProgressState.Replicate) this.sendAppend(id, true)
      else if (!this.sendAppend(id, false)) this.tellCommit(id, pr)
    }
  }

  /** Sends a replicating follower that holds committed entries it was not told of a heartbeat. */
  private tellCommit(to: NodeId, pr: Progress): void {
    if (Math.min(pr.match, this.log.committed) > pr.commitSent) this.sendHeartbeat(to, undefined, false)
  }

  private broadcastHeartbeat(context?: Uint8Array): void {
    for (const id of this.prs.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, context, false)
    }
  }

  private sendHeartbeat(to: NodeId, context: Uint8Array | undefined, quiesce: boolean): void {
    const pr = this.prs.get(to)!
    // Never tell a follower to commit beyond what it is known to hold (§5.3).
    const commit = Math.min(pr.match, this.log.committed)
    pr.commitSent = Math.max(pr.commitSent, commit)
    const m = message({ type: MessageType.Heartbeat, to, commit, context })
    if (quiesce) m.quiesce = true
    this.send(m)
  }

  /**
   * Sends the next append (or a snapshot when the entries are compacted) to `to`, respecting flow
   * control. Returns whether something was sent.
   */
  sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to)
    if (!pr || pr.isPaused()) return false
    let logTerm: number
    let entries: Entry[]
    try {
      logTerm = this.log.termOrThrow(pr.next - 1)
      entries = this.log.entriesFrom(pr.next, this.maxMessageBytes)
    } catch {
      return this.sendSnapshot(to, pr)
    }
    if (entries.length === 0 && !sendIfEmpty) return false
    this.send(
      message({
        type: MessageType.App,
        to,
        index: pr.next - 1,
        logTerm,
        entries,
        commit: this.log.committed,
      }),
    )
    // The follower commits at most up to the last entry this append confirms.
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.log.committed, pr.next - 1 + entries.length))
    if (entries.length > 0) {
      const last = entries[entries.length - 1]!.index
      if (pr.state === ProgressState.Replicate) {
        pr.next = last + 1
        pr.inflights.add(last)
      } else {
        pr.probeSent = true
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true
    }
    return true
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false
    let snapshot: Snapshot
    try {
      snapshot = this.log.snapshot()
    } catch (e) {
      this.logger.debug({ to, err: String(e) }, 'snapshot not ready; will retry')
      return false
    }
    assert(snapshot.meta.index > 0, 'need a non-empty snapshot')
    pr.becomeSnapshot(snapshot.meta.index)
    pr.snapshotSentTick = this.tickCount
    this.send(message({ type: MessageType.Snap, to, snapshot }))
    return true
  }

  // ---- membership ------------------------------------------------------------------------------

  /** Applies a committed conf change (called when the application applies the entry). */
  applyConfChange(cc: ConfChange): ConfState {
    this.conf = applyToConf(this.conf, cc)
    this.rebuildProgress()
    if (this.role === Role.Leader) {
      if (!this.conf.voters.includes(this.id)) {
        // A leader removed (or demoted) by its own change steps down once the change is applied.
        this.becomeFollower(this.term, NONE)
      } else {
        if (this.leadTransferee !== NONE && !this.conf.voters.includes(this.leadTransferee))
          this.leadTransferee = NONE
        // A smaller quorum may commit more at once; new members need their first append either way.
        this.maybeCommit()
        this.broadcastAppend()
      }
    }
    return cloneConf(this.conf)
  }
}
