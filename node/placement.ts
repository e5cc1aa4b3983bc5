/**
 * Placement decisions of the system group's leader, as pure functions of the catalog and the
 * membership view: where a new namespace's replicas go, how a replica set on a dead node is
 * repaired, and which leaderships move to even out load. Keeping them pure makes every rule a
 * unit test (and a property test) instead of a cluster experiment.
 */

/** What placement knows about one node. */
export interface NodeView {
  peer: string
  alive: boolean
  /** Milliseconds the node has been dead (0 when alive). */
  deadForMs: number
  /** Replicas the node hosts (its share of the work). */
  replicas: number
}

/** One namespace's replica set as the catalog records it. */
export interface ReplicaSet {
  namespace: string
  voters: string[]
  learners: string[]
  /** The peer that currently leads the namespace's group, if known. */
  leader: string
}

/**
 * Picks `count` distinct live nodes for a new namespace, least loaded first, ties broken by peer id
 * so every node computes the same answer. Returns fewer when fewer nodes are alive.
 */
export function pickReplicas(
  nodes: NodeView[],
  count: number,
  exclude: ReadonlySet<string> = new Set(),
): string[] {
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`Replica count must be a positive integer, got '${count}'`)
  return nodes
    .filter((n) => n.alive && !exclude.has(n.peer))
    .sort((a, b) => a.replicas - b.replicas || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
    .slice(0, count)
    .map((n) => n.peer)
}

/** One step of repairing a replica set; the leader applies one step at a time (one-at-a-time changes). */
export type RepairStep =
  | { kind: 'add-learner'; namespace: string; peer: string }
  | { kind: 'promote'; namespace: string; peer: string }
  | { kind: 'remove'; namespace: string; peer: string }

/**
 * The next repair step for one replica set, or undefined when it is healthy or cannot be helped.
 *  1. a learner that has caught up (`caughtUp`) is promoted;
 *  2. a voter dead for longer than `deadTimeoutMs` is removed once its replacement votes —
 *     so the set never shrinks below its size while a replacement exists;
 *  3. otherwise a missing replica gets a learner on the least loaded live node not in the set.
 * A dead learner is removed at once: it holds no vote and no acknowledged data of its own.
 */
export function repairStep(
  set: ReplicaSet,
  replicationFactor: number,
  nodes: Map<string, NodeView>,
  deadTimeoutMs: number,
  caughtUp: (peer: string) => boolean,
): RepairStep | undefined {
  const ns = set.namespace
  const isDead = (p: string) => {
    const n = nodes.get(p)
    return !n || (!n.alive && n.deadForMs >= deadTimeoutMs)
  }
  const deadLearner = set.learners.find(isDead)
  if (deadLearner) return { kind: 'remove', namespace: ns, peer: deadLearner }
  const ready = set.learners.find((p) => caughtUp(p))
  if (ready) return { kind: 'promote', namespace: ns, peer: ready }
  const liveVoters = set.voters.filter((p) => !isDead(p))
  const deadVoters = set.voters.filter(isDead)
  // Never remove the leader by repair; it would have to transfer first, and a dead node leads nothing.
  const removable = deadVoters.filter((p) => p !== set.leader)
  if (removable.length > 0 && liveVoters.length >= Math.min(replicationFactor, set.voters.length)) {
    return { kind: 'remove', namespace: ns, peer: removable[0]! }
  }
  const wanted = replicationFactor - liveVoters.length - set.learners.length
  if (wanted > 0) {
    const exclude = new Set([...set.voters, ...set.learners])
    const [peer] = pickReplicas([...nodes.values()], 1, exclude)
    if (peer) return { kind: 'add-learner', namespace: ns, peer }
  }
  if (removable.length > 0 && set.voters.length > replicationFactor) {
    return { kind: 'remove', namespace: ns, peer: removable[0]! }
  }
  return undefined
}

/** A leadership move proposed by the balancer. */
export interface Transfer {
  namespace: string
  from: string
  to: string
}

/**
 * Moves leaderships from nodes that lead clearly more than their fair share (more than
 * `ceil(groups / nodes) + slack`) to the live replica of the same group that leads the fewest.
 * Returns at most `transfersMax` moves; running it again after they happen converges, because each
 * move lowers the most loaded node by one and raises one below the fair share.
 */
export function balanceLeaders(
  sets: ReplicaSet[],
  alive: ReadonlySet<string>,
  slack: number,
  transfersMax: number,
): Transfer[] {
  const leads = new Map<string, number>()
  for (const p of alive) leads.set(p, 0)
  for (const s of sets) if (alive.has(s.leader)) leads.set(s.leader, (leads.get(s.leader) ?? 0) + 1)
  const led = sets.filter((s) => alive.has(s.leader)).length
  if (alive.size === 0 || led === 0) return []
  const fair = Math.ceil(led / alive.size)
  const out: Transfer[] = []
  const ordered = [...sets].sort((a, b) => (a.namespace < b.namespace ? -1 : 1))
  for (const s of ordered) {
    if (out.length >= transfersMax) break
    const from = s.leader
    if (!alive.has(from) || leads.get(from)! <= fair + slack) continue
    const candidates = s.voters.filter((p) => p !== from && alive.has(p))
    candidates.sort((a, b) => leads.get(a)! - leads.get(b)! || (a < b ? -1 : 1))
    const to = candidates[0]
    if (to === undefined || leads.get(to)! + 1 > fair) continue
    leads.set(from, leads.get(from)! - 1)
    leads.set(to, leads.get(to)! + 1)
    out.push({ namespace: s.namespace, from, to })
  }
  return out
}
