/**
 * The public face of `consensus/`: ActorMesh's Raft, a pure and deterministic state machine, plus
 * the multi-group driver and the storage contract. Other folders import only from here.
 */
export { AssertionError, assert } from './assert.js'
export * from './driver/index.js'
export {
  CompactedError,
  ConsensusError,
  type DropReason,
  ProposalDroppedError,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
} from './errors.js'
export { checkGroupWrites, type LogBounds, MemoryLogStore, memoryBounds } from './memory-log-store.js'
export { cloneConf, entrySizeBytes, limitEntriesBytes, MemoryStorage } from './memory-storage.js'
export { decodeConfChange, encodeConfChange, type RaftConfig, RawNode } from './raft.js'
export type { Frame, GroupMessage, Transport, TransportHandler } from './transport.js'
export * from './types.js'
