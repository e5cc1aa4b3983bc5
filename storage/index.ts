/**
 * The public face of `storage/`: LibSQL-backed Raft log, namespace state and snapshots.
 */
export type { StatePage, StateReader, StateWrite } from './state-store.js'
