/**
 * The public face of `storage/`: LibSQL-backed Raft log, namespace state and snapshots.
 */
export {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageKeyError,
  StorageLimitError,
  StorageQuotaError,
} from './errors.js'
export { openRaftLogStore, type RaftLogStore, type RaftLogStoreConfig } from './raft-log-store.js'
export type { DbConfig } from './sqlite.js'
export type { StatePage, StateReader, StateWrite } from './state-store.js'
