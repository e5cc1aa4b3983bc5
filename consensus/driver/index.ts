/** The multi-Raft driver's face inside consensus/; consensus/index.ts re-exports it. */
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
export {
  type CreateGroupOptions,
  createMultiRaft,
  type MultiRaft,
  type MultiRaftOptions,
  type MultiRaftStats,
} from './multi-raft.js'
