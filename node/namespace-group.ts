import { Packr } from 'msgpackr'
import type { Entry, Snapshot, StateMachine } from '../consensus/index.js'
import type { NamespaceStore, StateWrite } from '../storage/index.js'

const packr = new Packr({ useRecords: false })

/** One namespace Raft entry: the write set of one or more actor calls. */
export interface NamespaceEntry {
  writes: StateWrite[]
}

export function encodeNamespaceEntry(entry: NamespaceEntry): Uint8Array {
  return packr.pack(entry)
}

/**
 * A namespace group's state machine: applies committed write sets to the namespace's LibSQL
 * database, with the applied index in the same transaction (exactly-once after a crash; on
 * restart the group is created with `applied` = the database's applied index).
 */
export class NamespaceStateMachine implements StateMachine {
  constructor(private readonly store: NamespaceStore) {}

  async apply(entries: Entry[], _group: string, appliedIndex: number): Promise<void> {
    const writes: StateWrite[] = []
    for (const e of entries) writes.push(...(packr.unpack(e.data) as NamespaceEntry).writes)
    const term = entries.length > 0 ? entries[entries.length - 1]!.term : this.store.applied().term
    await this.store.apply({ index: appliedIndex, term, writes })
  }

  applySnapshot(_snapshot: Snapshot): void {
    // Namespace groups are never compacted yet (no `snapshot()` here), so no leader sends one.
    throw new Error('Cannot install a namespace snapshot: streaming namespace snapshots is not wired yet')
  }
}
