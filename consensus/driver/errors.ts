/**
 * Errors a caller of the multi-Raft driver handles. Each has a stable `code`, listed in
 * docs/errors.md under consensus/, and says whether retrying may succeed.
 */
import { ConsensusError } from '../errors.js'

/** Why a proposal's outcome is unknown. */
export type OutcomeUnknownReason = 'leadership-lost' | 'new-term' | 'timeout' | 'group-removed'

/**
 * A proposal was handed to Raft but this node can no longer tell whether it will commit: the leader
 * changed, a new term began (so another entry may take its index), it was not seen to commit within
 * `requestTimeoutTicks`, or the group was removed. It may still commit, so a retry must be
 * idempotent (or check first).
 */
export class ProposalOutcomeUnknownError extends ConsensusError {
  readonly retryable = true
  readonly reason: OutcomeUnknownReason
  constructor(group: string, reason: OutcomeUnknownReason) {
    super(
      'ACTORMESH_PROPOSAL_OUTCOME_UNKNOWN',
      `Cannot confirm proposal in group '${group}': ${reason.replace('-', ' ')}, the outcome is unknown`,
    )
    this.reason = reason
  }
}

/** A read point could not be confirmed (leadership changed or no answer in time); retry. */
export class ReadNotConfirmedError extends ConsensusError {
  readonly retryable = true
  constructor(group: string, reason: 'leadership-lost' | 'timeout' | 'group-removed') {
    super(
      'ACTORMESH_READ_NOT_CONFIRMED',
      `Cannot confirm a read point in group '${group}': ${reason.replace('-', ' ')}`,
    )
  }
}

/** The driver hosts no group of that name (never created, or removed). */
export class GroupNotFoundError extends ConsensusError {
  readonly retryable = false
  constructor(group: string) {
    super('ACTORMESH_GROUP_NOT_FOUND', `Cannot use group '${group}': this node does not host it`)
  }
}

/** `createGroup` for a group the driver already hosts, or beyond `groupsMax`. */
export class GroupConflictError extends ConsensusError {
  readonly retryable = false
  constructor(group: string, why: string) {
    super('ACTORMESH_GROUP_CONFLICT', `Cannot create group '${group}': ${why}`)
  }
}

/** The group already has `pendingProposalsMax` proposals (or `pendingReadsMax` reads) waiting. */
export class TooManyPendingError extends ConsensusError {
  readonly retryable = true
  constructor(group: string, limit: string, value: number) {
    super(
      'ACTORMESH_TOO_MANY_PENDING',
      `Cannot accept request for group '${group}': ${limit} (${value}) reached`,
    )
  }
}

/** The driver was closed, or failed because its log store could not persist a turn. */
export class DriverClosedError extends ConsensusError {
  readonly retryable = false
  constructor(why = 'the driver is closed') {
    super('ACTORMESH_DRIVER_CLOSED', `Cannot use the Raft driver: ${why}`)
  }
}
