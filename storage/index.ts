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
export {
  inspectNamespaceFile,
  type NamespaceFileInfo,
  type NamespaceFileOptions,
  type RebasePoint,
  rebaseNamespaceFile,
  swapNamespaceFile,
} from './namespace-file.js'
export {
  defaultNamespaceLimits,
  NAMESPACE_NAME,
  type NamespaceLimits,
  validateNamespaceName,
} from './namespace-schema.js'
export {
  type AppliedBatch,
  type AppliedPoint,
  type ModuleRecord,
  type NamespaceStore,
  type NamespaceStoreConfig,
  openNamespaceStore,
} from './namespace-store.js'
export { openRaftLogStore, type RaftLogStore, type RaftLogStoreConfig } from './raft-log-store.js'
export {
  createNamespaceSnapshot,
  installNamespaceSnapshot,
  type NamespaceSnapshot,
  type NamespaceSnapshotMeta,
  SNAPSHOT_CHUNK_BYTES_DEFAULT,
} from './snapshot.js'
export type { DbConfig } from './sqlite.js'
export type { StatePage, StateReader, StateWrite } from './state-store.js'
