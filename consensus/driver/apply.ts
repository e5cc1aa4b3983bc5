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

/**
 * Applies `rd` to `g`'s state machine and settles what it answers; `turn` is the current turn.
 * `signal` reaches a snapshot install (the driver runs a Ready with a snapshot in the background).
 */
export async function applyReady(
  g: GroupState,
  rd: Ready,
  incarnation: Incarnation,
  turn: number,
  signal?: AbortSignal,
): Promise<void> {
  const leadChanged = rd.softState !== undefined && rd.softState.lead !== g.lead
  const termChanged = rd.hardState !== undefined && rd.hardState.term !== g.term
  if (leadChanged || termChanged) {
    // What went to (or through) the old leader may be lost or superseded: its fate is unknown here.
    // A term change alone catches a leader that lost and regained leadership between two Readys.
    if (g.hasPending()) g.leadershipLost(turn, leadChanged ? 'leadership-lost' : 'new-term')
    if (rd.softState) g.lead = rd.softState.lead
    if (rd.hardState) g.term = rd.hardState.term
  }
  if (rd.snapshot) {
    const done = g.stateMachine.applySnapshot(rd.snapshot, g.name, signal ? { signal } : undefined)
    if (done) await done
    g.applied = rd.snapshot.meta.index
    g.snapshotIndex = rd.snapshot.meta.index
    g.conf = cloneConf(rd.snapshot.meta.conf)
    // A snapshot hides which entry took the pending change's index.
    if (g.confChange && g.confChange.index <= rd.snapshot.meta.index) g.confChangeLost('leadership-lost')
  }
  if (rd.committedEntries.length > 0) await applyCommitted(g, rd.committedEntries, incarnation)
  for (const rs of rd.readStates) {
    const batch = incarnation.readSeq(rs.context)
    if (batch >= 0) g.confirmReads(batch, rs.index)
  }
  g.serveReads()
}

/** Applies committed entries in one call, then resolves this node's proposals among them. */
async function applyCommitted(g: GroupState, committed: Entry[], incarnation: Incarnation): Promise<void> {
  const payloads: Entry[] = []
  const track = g.proposals.size > 0
  const ownSeqs: number[] = []
  const ownIndexes: number[] = []
  for (const e of committed) {
    if (e.type === EntryType.ConfChange) {
      g.conf = g.node.applyConfChange(decodeConfChange(e.data))
      g.confChangeApplied(e.index, e.term)
      continue
    }
    if (e.data.byteLength === 0) continue // a leader's no-op
    payloads.push({ term: e.term, index: e.index, type: e.type, data: unwrap(e.data) })
    if (!track) continue
    const seq = incarnation.ownSeq(e.data)
    if (seq < 0) continue
    ownSeqs.push(seq)
    ownIndexes.push(e.index)
  }
  const last = committed[committed.length - 1]!.index
  assert(last > g.applied, () => `group '${g.name}': applying ${last} after ${g.applied}`)
  const done = g.stateMachine.apply(payloads, g.name, last)
  if (done) await done
  g.applied = last
  for (let i = 0; i < ownSeqs.length; i++) g.resolveProposal(ownSeqs[i]!, ownIndexes[i]!)
}
