/**
 * Errors a caller of `consensus/` handles. Each has a stable `code`, listed in docs/errors.md.
 * Invariant violations are not errors: they throw `AssertionError` (see `assert.ts`).
 */

/** Base class: every ActorMesh error carries a stable, documented code. */
export class ConsensusError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}

/** Why a proposal was not accepted. */
export type DropReason =
  | 'no-leader'
  | 'transferring'
  | 'uncommitted-bytes'
  | 'pending-conf-change'
  | 'not-ready'

/**
 * A proposal was not appended: there is no leader to forward it to, leadership is being
 * transferred, or the leader's uncommitted-bytes bound is reached. Retrying later is safe: nothing
 * was written.
 */
export class ProposalDroppedError extends ConsensusError {
  readonly reason: DropReason
  /** The leader this node believes in, if any (a hint for routing). */
  readonly leader: string
  constructor(reason: DropReason, leader: string, message: string) {
    super('ACTORMESH_PROPOSAL_DROPPED', message)
    this.reason = reason
    this.leader = leader
  }
}

/** `Storage`: the requested index is below the first index (it was compacted into a snapshot). */
export class CompactedError extends ConsensusError {
  constructor(index: number, firstIndex: number) {
    super(
      'ACTORMESH_LOG_COMPACTED',
      `Cannot read log index ${index}: compacted, first index is ${firstIndex}`,
    )
  }
}

/** `Storage`: the requested index is beyond the last index. */
export class UnavailableError extends ConsensusError {
  constructor(index: number, lastIndex: number) {
    super('ACTORMESH_LOG_UNAVAILABLE', `Cannot read log index ${index}: last index is ${lastIndex}`)
  }
}

/** `Storage.snapshot()`: a snapshot is being prepared; Raft asks again later. */
export class SnapshotTemporarilyUnavailableError extends ConsensusError {
  constructor() {
    super('ACTORMESH_SNAPSHOT_UNAVAILABLE', 'Cannot send a snapshot yet: one is being prepared')
  }
}
