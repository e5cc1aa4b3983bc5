import { AssertionError } from '../assert.js'
import { CompactedError } from '../errors.js'
import type { Entry, HardState, NodeId, Storage } from '../types.js'

/** The safety properties the checker enforces (Raft paper Figure 3, plus durability across restarts). */
export type Invariant =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'commit-monotonic'
  | 'committed-entry-lost'
  | 'linearizable-read'
  | 'liveness'

/** A broken invariant: a bug in Raft (or in the simulator's driving of it), never bad input. */
export class InvariantViolation extends AssertionError {
  constructor(
    readonly invariant: Invariant,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`)
  }
}

/** One applied entry as the state machine records it: enough to compare across nodes. */
export interface AppliedRecord {
  index: number
  term: number
  /** The entry's identity: its type and payload. */
  key: string
}

/** The identity of an entry's content; two entries are the same entry iff type and data match. */
export function entryKey(e: Entry): string {
  let s = `${e.type}:`
  for (let i = 0; i < e.data.byteLength; i++) s += String.fromCharCode(e.data[i]!)
  return s
}

/** `term(index)` on persisted storage; undefined when compacted, -1 when beyond the log. */
function persistedTerm(storage: Storage, index: number): number | undefined {
  if (index > storage.lastIndex()) return -1
  try {
    return storage.term(index)
  } catch (e) {
    if (e instanceof CompactedError) return undefined
    throw e
  }
}

/**
 * Checks Raft's safety properties incrementally, from the events of a simulated run (what each
 * node persisted, applied, and which role it took). Each event is checked against everything seen
 * before in the run, over all time and across crashes, so a check costs time proportional to the
 * event, not to the logs. Memory grows with the run's entries, which `steps` bounds.
 */
export class InvariantChecker {
  /** Election safety: the leader of each term ever seen. */
  private readonly leaderOfTerm = new Map<number, NodeId>()
  /** Nodes that currently believe they lead, with their term. */
  private readonly leaders = new Map<NodeId, number>()
  /** Log matching: every (index, term) ever persisted, with its content and the previous entry's term. */
  private readonly seen = new Map<string, { key: string; prevTerm: number }>()
  /** The committed log so far: term and key at each index (slot 0 unused). */
  private readonly committedTerm: number[] = [0]
  private readonly committedKey: string[] = ['']
  /** The highest commit index each node ever persisted (it must never move back, even across restarts). */
  private readonly persistedCommit = new Map<NodeId, number>()

  /** The highest index known to be committed. */
  get commitIndex(): number {
    return this.committedTerm.length - 1
  }

  /** The committed entry at `index` (known committed), for tests and the liveness check. */
  committedAt(index: number): { term: number; key: string } | undefined {
    if (index < 1 || index > this.commitIndex) return undefined
    return { term: this.committedTerm[index]!, key: this.committedKey[index]! }
  }

  /** A node took a role: `leader` with `term`, or stopped leading (or crashed). */
  onRole(id: NodeId, isLeader: boolean, term: number, storage: Storage): void {
    if (!isLeader) {
      this.leaders.delete(id)
      return
    }
    const other = this.leaderOfTerm.get(term)
    if (other !== undefined && other !== id) {
      throw new InvariantViolation('election-safety', `'${other}' and '${id}' both led term ${term}`)
    }
    this.leaderOfTerm.set(term, id)
    this.leaders.set(id, term)
    this.checkLeaderHolds(id, term, storage)
  }

  /**
   * A node persisted `entries` (already appended to `storage`). Same index and term must mean the
   * same content and the same preceding term; by induction the logs then match up to there (§5.3).
   */
  onPersistEntries(id: NodeId, entries: readonly Entry[], storage: Storage): void {
    if (entries.length === 0) return
    let prevTerm = persistedTerm(storage, entries[0]!.index - 1)
    for (const e of entries) {
      const at = `${e.index}:${e.term}`
      const key = entryKey(e)
      const known = this.seen.get(at)
      if (known === undefined) {
        this.seen.set(at, { key, prevTerm: prevTerm ?? -2 })
      } else if (known.key !== key) {
        throw new InvariantViolation('log-matching', `'${id}' holds a different entry at ${at}`)
      } else if (prevTerm !== undefined && known.prevTerm !== -2 && known.prevTerm !== prevTerm) {
        throw new InvariantViolation(
          'log-matching',
          `'${id}' holds ${at} after term ${prevTerm}, another node after term ${known.prevTerm}`,
        )
      }
      prevTerm = e.term
    }
  }

  /** A node persisted `hardState`: its commit never moves back, and what it commits is the committed log. */
  onPersistHardState(id: NodeId, hs: HardState, storage: Storage): void {
    const before = this.persistedCommit.get(id) ?? 0
    if (hs.commit < before) {
      throw new InvariantViolation(
        'commit-monotonic',
        `'${id}' persisted commit ${hs.commit} after ${before}`,
      )
    }
    this.persistedCommit.set(id, hs.commit)
    if (hs.commit <= before) return
    const known = this.commitIndex
    for (let i = known + 1; i <= hs.commit; i++) {
      const term = persistedTerm(storage, i)
      if (term === undefined || term < 0) {
        throw new InvariantViolation('committed-entry-lost', `'${id}' commits ${i} but does not hold it`)
      }
      const entry = storage.entries(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!
      this.committedTerm.push(term)
      this.committedKey.push(entryKey(entry))
    }
    this.checkHolds(id, Math.min(hs.commit, known), storage, 'state-machine-safety')
    if (hs.commit <= known) return
    for (const [leader, term] of this.leaders) {
      const s = this.storageOf?.(leader)
      if (s !== undefined) this.checkLeaderHolds(leader, term, s)
    }
  }

  /** A node's state machine applied `record`; the same entry must be applied at that index everywhere. */
  onApply(id: NodeId, record: AppliedRecord): void {
    const term = this.committedTerm[record.index]
    if (term === undefined) {
      throw new InvariantViolation(
        'state-machine-safety',
        `'${id}' applied ${record.index}, not known committed`,
      )
    }
    if (term !== record.term || this.committedKey[record.index] !== record.key) {
      throw new InvariantViolation(
        'state-machine-safety',
        `'${id}' applied ${record.index}:${record.term}, committed was ${record.index}:${term}`,
      )
    }
  }

  /** A node installed (or restored) a snapshot: it must sit on the committed log. */
  onSnapshot(id: NodeId, index: number, term: number): void {
    if (index === 0) return
    const committed = this.committedTerm[index]
    if (committed !== term) {
      throw new InvariantViolation(
        'state-machine-safety',
        `'${id}' installed a snapshot at ${index}:${term}, committed was ${index}:${committed}`,
      )
    }
  }

  /** A node restarted over its persisted state: nothing it had committed may be gone. */
  onRestart(id: NodeId, hs: HardState, storage: Storage): void {
    const before = this.persistedCommit.get(id) ?? 0
    if (hs.commit < before) {
      throw new InvariantViolation(
        'committed-entry-lost',
        `'${id}' restarted with commit ${hs.commit} < ${before}`,
      )
    }
    this.checkHolds(id, Math.min(hs.commit, this.commitIndex), storage, 'committed-entry-lost')
  }

  /** `storage` holds the committed entry at `index` (or has compacted it into a snapshot). */
  private checkHolds(id: NodeId, index: number, storage: Storage, invariant: Invariant): void {
    if (index < 1) return
    const term = persistedTerm(storage, index)
    if (term === undefined) return // compacted: covered by a snapshot of applied, hence committed, state
    if (term !== this.committedTerm[index]) {
      throw new InvariantViolation(
        invariant,
        `'${id}' holds ${index}:${term}, committed was ${index}:${this.committedTerm[index]}`,
      )
    }
  }

  /**
   * Leader completeness (§5.4): a leader of `term` holds every entry committed in an earlier term.
   * Terms never decrease along the log, so checking the newest such entry suffices given log
   * matching. `s` is the leader's persisted log.
   */
  private checkLeaderHolds(id: NodeId, term: number, s: Storage): void {
    let i = this.commitIndex
    while (i > 0 && this.committedTerm[i]! >= term) i--
    if (i < 1) return
    const held = persistedTerm(s, i)
    if (held === undefined) return
    if (held !== this.committedTerm[i]) {
      throw new InvariantViolation(
        'leader-completeness',
        `leader '${id}' of term ${term} lacks committed ${i}:${this.committedTerm[i]} (holds term ${held})`,
      )
    }
  }

  /** How the checker finds a current leader's persisted log when commits advance (set by the cluster). */
  storageOf: ((id: NodeId) => Storage | undefined) | undefined
}
