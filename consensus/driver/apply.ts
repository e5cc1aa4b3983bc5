/**
 * Steps 3 and 4 of the Ready contract for one group (see consensus/types.ts, `Ready`): note the
 * leader, apply the snapshot and the committed entries to the state machine, settle the proposals
 * and reads they answer.
 */
import { assert } from '../assert.js'
import { cloneConf } from '../memory-storage.js'
import { decodeConfChange } from '../raft.js'
import { type Entry, EntryType, type Ready } from '../types.js'
import { type Incarnation, unwrap } from './envelope.js'
import type { GroupState } from './group.js'

/** Applies `rd` to `g`'s state machine and settles what it answers; `turn` is the current turn. */
export async function applyReady(
  g: GroupState,
  rd: Ready,
  incarnation: Incarnation,
  turn: number,
): Promise<void> {
  if (rd.softState && rd.softState.lead !== g.lead) {
    // Whatever was in flight went to (or through) the old leader: its fate is unknown here.
    if (g.hasPending()) g.leadershipLost(turn)
    g.lead = rd.softState.lead
  }
  if (g.proposals.size > 0) noteIndexes(g, rd.entries, incarnation)
  if (rd.snapshot) {
    const done = g.stateMachine.applySnapshot(rd.snapshot, g.name)
    if (done) await done
    g.applied = rd.snapshot.meta.index
    g.snapshotIndex = rd.snapshot.meta.index
    g.conf = cloneConf(rd.snapshot.meta.conf)
  }
  if (rd.committedEntries.length > 0) await applyCommitted(g, rd.committedEntries, incarnation)
  for (const rs of rd.readStates) {
    const batch = incarnation.readSeq(rs.context)
    if (batch >= 0) g.confirmReads(batch, rs.index)
  }
  g.serveReads()
}

/** Records where this node's own proposals landed, to notice when another entry takes the slot. */
function noteIndexes(g: GroupState, entries: Entry[], incarnation: Incarnation): void {
  for (const e of entries) {
    if (e.type !== EntryType.Normal) continue
    const seq = incarnation.ownSeq(e.data)
    if (seq >= 0) g.noteIndex(seq, e.index)
  }
}

async function applyCommitted(g: GroupState, committed: Entry[], incarnation: Incarnation): Promise<void> {
  const payloads: Entry[] = []
  for (const e of committed) {
    if (e.type === EntryType.ConfChange) {
      g.conf = g.node.applyConfChange(decodeConfChange(e.data))
    } else if (e.data.byteLength > 0) {
      payloads.push({ term: e.term, index: e.index, type: e.type, data: unwrap(e.data) })
    }
  }
  const last = committed[committed.length - 1]!.index
  assert(last > g.applied, () => `group '${g.name}': applying ${last} after ${g.applied}`)
  const done = g.stateMachine.apply(payloads, g.name, last)
  if (done) await done
  g.applied = last
  if (g.proposals.size === 0) return
  for (const e of committed) {
    if (e.type !== EntryType.Normal) continue
    const seq = incarnation.ownSeq(e.data)
    if (seq >= 0) g.resolveProposal(seq, e.index)
  }
  g.rejectSuperseded()
}
