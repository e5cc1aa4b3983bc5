import { assert } from './assert.js'
import { ProgressState, type ProgressStatus } from './types.js'

/**
 * A ring of the last indexes of appends sent to one follower and not yet acknowledged: flow
 * control that bounds what a leader has in flight per follower (etcd's `Inflights`).
 */
export class Inflights {
  private readonly buffer: number[]
  private start = 0
  count = 0

  constructor(readonly size: number) {
    assert(size > 0, 'maxInflightAppends must be positive')
    this.buffer = new Array<number>(size).fill(0)
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'inflights: add to a full window')
    this.buffer[(this.start + this.count) % this.size] = lastIndex
    this.count++
  }

  /** Frees every inflight append whose last index is ≤ `index` (they are acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.buffer[this.start]! <= index) {
      this.start = (this.start + 1) % this.size
      this.count--
    }
  }

  freeFirstOne(): void {
    if (this.count === 0) return
    this.start = (this.start + 1) % this.size
    this.count--
  }

  full(): boolean {
    return this.count === this.size
  }

  reset(): void {
    this.start = 0
    this.count = 0
  }
}

/** The leader's view of one follower (thesis §3.5 nextIndex/matchIndex, plus etcd's states). */
export class Progress {
  match = 0
  next: number
  state: ProgressState = ProgressState.Probe
  /** Probe: an append was sent this heartbeat interval; wait for an answer or the next beat. */
  probeSent = false
  /** Snapshot: the index of the snapshot in flight. */
  pendingSnapshot = 0
  /** Snapshot: the leader's tick count when it was sent. */
  snapshotSentTick = 0
  /** Heard from within the current election timeout (CheckQuorum). */
  recentActive = false
  /** Tick at which the follower last acknowledged us (leader lease). */
  lastAckTick = Number.NEGATIVE_INFINITY
  /** The highest commit index sent to the follower (`broadcastCommit` skips telling it twice). */
  commitSent = 0
  readonly inflights: Inflights
  isLearner: boolean

  constructor(next: number, maxInflight: number, isLearner: boolean) {
    this.next = next
    this.inflights = new Inflights(maxInflight)
    this.isLearner = isLearner
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false
    this.pendingSnapshot = 0
    this.state = state
    this.inflights.reset()
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot
      this.resetState(ProgressState.Probe)
      this.next = Math.max(this.match + 1, pending + 1)
    } else {
      this.resetState(ProgressState.Probe)
      this.next = this.match + 1
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate)
    this.next = this.match + 1
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot)
    this.pendingSnapshot = snapshotIndex
  }

  /** An acknowledgment of `index`: returns whether it moved `match` forward. */
  maybeUpdate(index: number): boolean {
    let updated = false
    if (this.match < index) {
      this.match = index
      updated = true
      this.probeSent = false
    }
    this.next = Math.max(this.next, index + 1)
    return updated
  }

  /**
   * A rejection of the append at `rejected`: back `next` off towards `matchHint` (the follower's
   * hint). Returns false for a stale rejection that must be ignored.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1)
    this.probeSent = false
    return true
  }

  /** Whether the leader should hold back appends to this follower for now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent
      case ProgressState.Replicate:
        return this.inflights.full()
      default:
        return true
    }
  }

  status(): ProgressStatus {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      recentActive: this.recentActive,
      isLearner: this.isLearner,
      inflight: this.inflights.count,
    }
  }
}
