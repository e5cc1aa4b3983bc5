/** The multi-Raft driver's face inside consensus/; consensus/index.ts re-exports it. */

export type { CreateGroupOptions, MultiRaft, MultiRaftOptions, MultiRaftStats } from './api.js'
export type { GroupRaftOptions, MultiRaftConfig } from './config.js'
export {
  DriverClosedError,
  GroupConflictError,
  GroupNotFoundError,
  type OutcomeUnknownReason,
  ProposalOutcomeUnknownError,
  ReadNotConfirmedError,
  TooManyPendingError,
} from './errors.js'
export type { StateMachine } from './group.js'
export { type FrameCodec, MemoryHub, type MemoryHubOptions } from './memory-transport.js'
export { createMultiRaft } from './multi-raft.js'
