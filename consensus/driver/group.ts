/**
 * One hosted group: its RawNode, its state machine, and the requests waiting on it. Pending
 * proposals and reads live in insertion-ordered maps, so expiring the oldest is O(expired).
 */
import type { RawNode } from '../raft.js'
import type { ConfState, Entry, NodeId, Ready, Snapshot } from '../types.js'
import { NONE } from '../types.js'
import { type OutcomeUnknownReason, ProposalOutcomeUnknownError, ReadNotConfirmedError } from './errors.js'

/**
 * The replicated state machine of one group. The driver calls it in log order, from one turn at a
 * time; a returned promise is awaited before the group's Ready is advanced.
 */
export interface StateMachine {
  /**
   * Applies committed entries. `entries` holds the proposals' payloads (the driver's envelope
   * removed); leader no-ops and membership changes are left out, but `appliedIndex` — the index of
   * the last committed entry of this batch — covers them, so the state machine can record it
   * durably with its state and hand it back as `applied` after a restart (exactly-once apply).
   */
  apply(entries: Entry[], group: string, appliedIndex: number): void | Promise<void>
  /**
   * Replaces the state with a snapshot received from the leader (or, after a restart, with the log
   * store's snapshot when the state machine had not applied it). It may take long (a state machine
   * that fetches its state from a peer): the driver keeps running the other groups meanwhile, and
   * aborts `signal` when the group is removed or the driver closes.
   */
  applySnapshot(snapshot: Snapshot, group: string, options?: { signal?: AbortSignal }): void | Promise<void>
  /** The state as bytes at the last applied index, for log compaction (optional). */
  snapshot?(group: string): Uint8Array | Promise<Uint8Array>
}

/** A proposal waiting to be committed and applied. */
export interface PendingProposal {
  seq: number
  /** The enveloped payload, handed to Raft at the next turn. */
  data: Uint8Array
  /** The turn that handed it to Raft; 0 while it is still buffered in the driver. */
  submitTurn: number
  deadlineTick: number
  resolve(index: number): void
  reject(error: Error): void
  settled: boolean
}

/** A read waiting for its read state, then for the applied index to reach it. */
export interface PendingRead {
  /** Key in `GroupState.reads`. */
  seq: number
  /** The ReadIndex request (batch) it joined; 0 while buffered in the driver. */
  batch: number
  /** The turn that issued its ReadIndex request; 0 while buffered. */
  submitTurn: number
  /** The read state's index once it arrived; -1 before. */
  index: number
  deadlineTick: number
  resolve(): void
  reject(error: Error): void
  settled: boolean
}

/** A membership change waiting to be applied (Raft allows one at a time). */
export interface PendingConfChange {
  index: number
  term: number
  deadlineTick: number
  resolve(conf: ConfState): void
  reject(error: Error): void
}

/**
 * A snapshot being installed into a group's state machine, in the background of the driver's
 * turns. `ready` is the group's un-advanced Ready that carried the snapshot (none for the log
 * store's own snapshot installed on restart); it is advanced when the install settles.
 */
export interface PendingInstall {
  ready: Ready | undefined
  abort: AbortController
  /** Settles (never rejects) when the install finished, failed (`error`) or was aborted. */
  done: Promise<void>
  error: Error | undefined
}

/** The driver's bookkeeping for one group. */
export class GroupState {
  lead: NodeId = NONE
  /** The term of the last Ready's hard state: a change means a new election happened. */
  term: number
  /** Ticked by the driver; false while the group is quiesced. */
  active = true
  /** Number of `tick()` calls the RawNode has seen, including its initial phase. */
  ticks: number
  applied: number
  conf: ConfState
  snapshotIndex: number
  removed = false
  proposalSeq = 0
  /** Sequence of reads (keys of `reads`). */
  readSeq = 0
  /** Sequence of ReadIndex requests: one per turn serves every read buffered before it. */
  readBatchSeq = 0
  bufferedReads: PendingRead[] = []
  readonly readBatches = new Map<number, PendingRead[]>()
  readonly proposals = new Map<number, PendingProposal>()
  /** Proposals made since the last turn, handed to Raft together at its start (see `Driver.submit`). */
  buffered: PendingProposal[] = []
  readonly reads = new Map<number, PendingRead>()
  confChange: PendingConfChange | undefined
  /** Reads with a read state, waiting for `applied` to reach it. */
  confirmedReads: PendingRead[] = []
  /** A snapshot install in progress: the group's Readys wait for it; other groups do not. */
  install: PendingInstall | undefined

  constructor(
    readonly name: string,
    public node: RawNode,
    readonly stateMachine: StateMachine,
    tickPhase: number,
    term: number,
    applied: number,
    conf: ConfState,
    snapshotIndex: number,
  ) {
    this.ticks = tickPhase
    this.term = term
    this.applied = applied
    this.conf = conf
    this.snapshotIndex = snapshotIndex
  }

  hasPending(): boolean {
    return this.proposals.size > 0 || this.reads.size > 0 || this.confChange !== undefined
  }

  /** A conf change entry was applied at `index` with `term`: settles the pending change it answers. */
  confChangeApplied(index: number, term: number): void {
    const c = this.confChange
    if (!c || index < c.index) return
    this.confChange = undefined
    if (index === c.index && term === c.term) c.resolve(this.conf)
    else c.reject(new ProposalOutcomeUnknownError(this.name, 'leadership-lost'))
  }

  /** The pending conf change cannot be tracked any more (leader change, snapshot, removal, timeout). */
  confChangeLost(reason: 'leadership-lost' | 'timeout' | 'group-removed'): void {
    const c = this.confChange
    if (!c) return
    this.confChange = undefined
    c.reject(new ProposalOutcomeUnknownError(this.name, reason))
  }

  /** The entry proposed as `seq` was applied at `index`. */
  resolveProposal(seq: number, index: number): void {
    const p = this.proposals.get(seq)
    if (!p) return
    this.proposals.delete(seq)
    p.settled = true
    p.resolve(index)
  }

  /** Raft refused a buffered proposal: nothing was written. */
  failProposal(p: PendingProposal, error: Error): void {
    if (p.settled) return
    p.settled = true
    this.proposals.delete(p.seq)
    p.reject(error)
  }

  rejectProposal(p: PendingProposal, reason: OutcomeUnknownReason): void {
    if (p.settled) return
    p.settled = true
    this.proposals.delete(p.seq)
    p.reject(new ProposalOutcomeUnknownError(this.name, reason))
  }

  /**
   * The leader changed: what went to (or through) the old one cannot be tracked to an outcome.
   * Proposals handed to Raft in `turn` itself are kept: they were submitted after every change
   * this turn's Ready reports, so they went to the new leader. Buffered ones were not sent yet.
   */
  leadershipLost(turn: number, reason: OutcomeUnknownReason = 'leadership-lost'): void {
    this.confChangeLost(reason === 'group-removed' ? 'group-removed' : 'leadership-lost')
    for (const p of this.proposals.values()) {
      if (reason === 'group-removed' || (p.submitTurn !== 0 && p.submitTurn < turn))
        this.rejectProposal(p, reason)
    }
    // Reads already confirmed stay valid: their index was a committed read point (§6.4).
    for (const r of this.reads.values()) {
      if (reason === 'group-removed') this.rejectRead(r, 'group-removed')
      else if (r.index < 0 && r.submitTurn !== 0 && r.submitTurn < turn) this.rejectRead(r, 'leadership-lost')
    }
    this.pruneReadBatches()
  }

  /**
   * A read state arrived for ReadIndex request `batch`. Every read in it was invoked before the
   * request was issued, so the read point is valid for all of them (linearizable, §6.4).
   */
  confirmReads(batch: number, index: number): void {
    const reads = this.readBatches.get(batch)
    if (!reads) return
    this.readBatches.delete(batch)
    for (const r of reads) {
      if (r.settled || r.index >= 0) continue
      r.index = index
      this.confirmedReads.push(r)
    }
  }

  /** Raft refused a ReadIndex request: nothing was asked. */
  failReads(reads: PendingRead[], error: Error): void {
    for (const r of reads) {
      if (r.settled) continue
      r.settled = true
      this.reads.delete(r.seq)
      r.reject(error)
    }
  }

  /** Forgets ReadIndex requests whose reads all settled (timed out or aborted): bounded memory. */
  private pruneReadBatches(): void {
    for (const [batch, reads] of this.readBatches) {
      if (reads.every((r) => r.settled)) this.readBatches.delete(batch)
    }
  }

  /** Serves every confirmed read whose index the state machine has reached. */
  serveReads(): void {
    if (this.confirmedReads.length === 0) return
    const waiting: PendingRead[] = []
    for (const r of this.confirmedReads) {
      if (r.settled) continue
      if (r.index > this.applied) {
        waiting.push(r)
        continue
      }
      r.settled = true
      this.reads.delete(r.seq)
      r.resolve()
    }
    this.confirmedReads = waiting
  }

  rejectRead(r: PendingRead, reason: 'leadership-lost' | 'timeout' | 'group-removed'): void {
    if (r.settled) return
    r.settled = true
    this.reads.delete(r.seq)
    r.reject(new ReadNotConfirmedError(this.name, reason))
  }

  /** Rejects requests past their deadline; both maps are in deadline order. */
  expire(now: number): void {
    if (this.confChange && this.confChange.deadlineTick <= now) this.confChangeLost('timeout')
    for (const p of this.proposals.values()) {
      if (p.deadlineTick > now) break
      this.rejectProposal(p, 'timeout')
    }
    let expired = false
    for (const r of this.reads.values()) {
      if (r.deadlineTick > now) break
      this.rejectRead(r, 'timeout')
      expired = true
    }
    if (expired) this.pruneReadBatches()
  }

  /** Rejects everything (the group is removed or the driver closes). */
  rejectAll(proposalError: () => Error, readError: () => Error): void {
    if (this.confChange) {
      this.confChange.reject(proposalError())
      this.confChange = undefined
    }
    for (const p of this.proposals.values()) {
      p.settled = true
      p.reject(proposalError())
    }
    this.proposals.clear()
    this.buffered = []
    for (const r of this.reads.values()) {
      r.settled = true
      r.reject(readError())
    }
    this.reads.clear()
    this.bufferedReads = []
    this.readBatches.clear()
    this.confirmedReads = []
  }
}
