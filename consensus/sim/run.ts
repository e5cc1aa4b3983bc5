import { AssertionError } from '../assert.js'
import { Cluster, type ClusterStats } from './cluster.js'
import { InvariantViolation } from './invariants.js'
import type { MessageFaults, NetworkStats } from './network.js'
import type { BrokenMode, SimNode, SimRaftSettings } from './node.js'
import { deriveSeed, fnv1a, Prng } from './prng.js'

/** What one simulated run does. */
export interface SimulationOptions {
  seed: number
  /** Random steps before the faults heal (default 500). */
  steps?: number
  /** Nodes in the cluster, voters or not (default 5, at least 3). */
  nodes?: number
  /** Inject faults: message drop, delay, duplication, reordering, partitions, crashes (default true). */
  faults?: boolean
  /** Record a line per step in the result (replay uses it). */
  trace?: boolean
  /** Called with each trace line as it is made (a failed run's trace survives the throw). */
  onTrace?: (line: string) => void
  /**
   * A deliberately broken Raft, to prove the checker can fail (see `BrokenMode`); crashes are
   * then frequent.
   */
  broken?: BrokenMode
}

/** A run that kept every invariant. */
export interface SimulationResult {
  seed: number
  steps: number
  /** FNV-1a over every step's action and every node's durable state after it: equal for equal seeds. */
  traceHash: string
  stats: ClusterStats & { network: NetworkStats; commitIndex: number; livenessTicks: number }
  trace?: string[]
}

/** A run that broke an invariant (or threw): says which seed and step, and how to replay it. */
export class SimulationFailure extends AssertionError {
  constructor(
    readonly seed: number,
    readonly step: number,
    readonly replayCommand: string,
    override readonly cause: unknown,
  ) {
    const why = cause instanceof Error ? cause.message : String(cause)
    super(`Simulation failed for seed ${seed} at step ${step}: ${why}\n  replay: ${replayCommand}`)
  }
}

/**
 * After the faults heal, a leader must be elected and a new proposal applied within this many
 * election timeouts' worth of ticks. Elections are won by chance, so any bound is probabilistic:
 * in seed 56767 (no PreVote, a removed voter, logs of three lengths) only one of three promotable
 * nodes can win, and it must draw the shortest timeout, about one round in three; 20 timeouts
 * (~15 rounds) failed once in 100,000 seeds. At 50 such a run fails with probability ~1e-6.
 */
export const LIVENESS_ELECTION_TIMEOUTS = 50

/** Messages delivered per tick during the liveness phase at most (a loop that never drains is a bug). */
const LIVENESS_DELIVERIES_MAX = 20_000

/** The command that replays `seed` with the same options. */
export function replayCommand(o: SimulationOptions): string {
  let extra = o.faults === false ? ' --no-faults' : ''
  if (o.broken !== undefined) extra += ` --broken ${o.broken}`
  return `npm run sim -- --replay ${o.seed} --steps ${o.steps ?? 500} --nodes ${o.nodes ?? 5}${extra}`
}

/**
 * Runs one seeded simulation: `steps` random steps with faults, then heal and check liveness.
 * Everything random comes from `seed`, so the same options give the same trace hash. Throws
 * `SimulationFailure` (with the seed, the step and a replay command) when an invariant breaks.
 */
export function runSimulation(options: SimulationOptions): SimulationResult {
  const steps = options.steps ?? 500
  const nodes = options.nodes ?? 5
  if (!Number.isInteger(nodes) || nodes < 3)
    throw new RangeError(`Cannot simulate '${nodes}' nodes: need at least 3`)
  const rng = new Prng(deriveSeed(options.seed, 0))
  const cluster = newCluster(options, nodes, rng)
  const trace: string[] | undefined = options.trace ? [] : undefined
  let hash = fnv1a(`seed ${options.seed}`)
  let step = 0
  try {
    for (; step < steps; step++) {
      cluster.network.now = step
      const label = randomStep(cluster, rng, options)
      cluster.settle()
      const line = `${step} ${label} | ${summary(cluster.nodes)}`
      hash = fnv1a(line, hash)
      trace?.push(line)
      options.onTrace?.(line)
    }
    const livenessTicks = checkLiveness(cluster, options.seed, options.onTrace)
    trace?.push(`liveness: probe applied after ${livenessTicks} ticks | ${summary(cluster.nodes)}`)
    const stats = {
      ...cluster.finalStats(),
      network: { ...cluster.network.stats },
      commitIndex: cluster.checker.commitIndex,
      livenessTicks,
    }
    const result: SimulationResult = { seed: options.seed, steps, traceHash: hash.toString(16), stats }
    if (trace) result.trace = trace
    return result
  } catch (e) {
    throw new SimulationFailure(options.seed, step, replayCommand(options), e)
  }
}

/** Runs `seed` again with a trace of every step, to read what happened. */
export function replay(seed: number, options: Omit<SimulationOptions, 'seed'> = {}): SimulationResult {
  return runSimulation({ ...options, seed, trace: true })
}

function newCluster(options: SimulationOptions, nodes: number, rng: Prng): Cluster {
  const settings: SimRaftSettings = {
    electionTicks: 10,
    heartbeatTicks: rng.chance(0.7) ? 1 : 2,
    preVote: rng.chance(0.85),
    checkQuorum: rng.chance(0.85),
    readOnly: 'safe',
    maxInflightAppends: rng.pick([1, 4, 256]),
    maxMessageBytes: rng.pick([64, 1024, 1 << 20]),
    // A small bound makes the leader drop proposals ('uncommitted-bytes') while followers lag.
    maxUncommittedBytes: rng.pick([512, 64 << 20]),
    quiesceAfterTicks: rng.chance(0.2) ? 30 : 0,
  }
  if (settings.checkQuorum && rng.chance(0.3)) settings.readOnly = 'lease'
  const faults: MessageFaults | undefined =
    options.faults === false
      ? undefined
      : {
          dropRate: rng.int(10) / 100,
          duplicateRate: rng.int(5) / 100,
          delayRate: rng.int(10) / 100,
          delayStepsMax: 1 + rng.int(20),
          reorder: rng.chance(0.5),
        }
  const initialVoters = 3 + rng.int(nodes - 2)
  const cluster = new Cluster(
    {
      seed: options.seed,
      nodes,
      initialVoters,
      settings,
      faults,
      broken: options.broken,
      inflightMessagesMax: 1024,
    },
    rng,
  )
  if (rng.chance(0.5)) cluster.nodes[rng.int(initialVoters)]!.raw?.campaign()
  cluster.settle()
  return cluster
}

/** One random action; returns its label for the trace. */
function randomStep(c: Cluster, rng: Prng, o: SimulationOptions): string {
  // The broken Raft needs crashes between votes to show its bug: give it more of them.
  if (o.broken !== undefined && rng.chance(0.15)) return randomFault(c, rng, o)
  const r = rng.int(100)
  const up = c.nodes.filter((n) => n.up)
  if (r < 40) return `deliver ${c.deliver(1 + rng.int(6))}`
  if (r < 65) {
    const one = rng.chance(0.15) && up.length > 0 ? rng.pick(up) : undefined
    c.tick(one)
    return one ? `tick ${one.id}` : 'tick all'
  }
  const leader = c.leader()
  if (r < 83 && up.length > 0) {
    const at = leader && rng.chance(0.5) ? leader : rng.pick(up)
    c.propose(at)
    return `propose at ${at.id}`
  }
  if (r < 85 && up.length > 0) {
    const at = rng.pick(up)
    c.readIndex(at)
    return `readIndex at ${at.id}`
  }
  if (r < 87 && leader) {
    c.transfer(leader)
    return `transfer from ${leader.id}`
  }
  if (r < 90 && leader) {
    c.changeMembership(leader)
    return `conf change at ${leader.id}`
  }
  if (r >= 90 && (o.faults ?? true) && (o.broken !== undefined || rng.chance(0.5)))
    return randomFault(c, rng, o)
  return `deliver ${c.deliver(1)}`
}

function randomFault(c: Cluster, rng: Prng, o: SimulationOptions): string {
  const up = c.nodes.filter((n) => n.up)
  const down = c.nodes.filter((n) => !n.up)
  const f = o.broken ? rng.pick([3, 3, 4, 4, 2]) : rng.int(6)
  if (f === 0) {
    const ids = c.nodes.map((n) => n.id)
    const side = ids.filter(() => rng.chance(0.5))
    c.network.partition(
      side,
      ids.filter((id) => !side.includes(id)),
    )
    c.stats.partitions++
    return `partition [${side.join(',')}]`
  }
  if (f === 1) {
    const a = rng.pick(c.nodes).id
    const b = rng.pick(c.nodes).id
    if (a !== b) c.network.cutOneWay(a, b)
    c.stats.partitions++
    return `cut ${a}->${b}`
  }
  if (f === 2) {
    c.network.healPartitions()
    return 'heal partitions'
  }
  if (f === 3 && up.length > 1) {
    const n = rng.pick(up)
    c.crash(n)
    // The mesh's failure detector wakes quiesced groups whose node died.
    for (const other of c.nodes) other.raw?.wake()
    return `crash ${n.id}`
  }
  if (down.length > 0) {
    const n = rng.pick(down)
    c.restart(n)
    return `restart ${n.id}`
  }
  return `deliver ${c.deliver(1)}`
}

/** Heals every fault, then requires a leader and a newly committed proposal within the bound. */
function checkLiveness(c: Cluster, seed: number, onTrace?: (line: string) => void): number {
  c.heal()
  c.settle()
  c.probeKey = `probe-${seed}`
  const bound = LIVENESS_ELECTION_TIMEOUTS * c.options.settings.electionTicks
  for (let t = 1; t <= bound; t++) {
    c.tick()
    c.settle()
    c.deliver(LIVENESS_DELIVERIES_MAX)
    if (c.network.inflight > 0)
      throw new InvariantViolation('liveness', `the network did not drain in tick ${t}`)
    const leader = c.leader()
    if (leader && !c.probeApplied && leader.raw?.status().conf.voters.includes(leader.id)) {
      c.propose(leader, c.probeKey)
      c.deliver(LIVENESS_DELIVERIES_MAX)
    }
    onTrace?.(`liveness tick ${t} | ${summary(c.nodes)}`)
    if (c.probeApplied) return t
  }
  throw new InvariantViolation(
    'liveness',
    `no leader committed a new proposal within ${bound} ticks after healing`,
  )
}

function summary(nodes: readonly SimNode[]): string {
  return nodes
    .map((n) => {
      const hs = n.storage.getHardState()
      const state = n.up ? (n.isLeader ? 'L' : 'F') : 'X'
      return `${n.id}:${state}${hs.term}/${hs.commit}/${n.storage.lastIndex()}/${n.appliedIndex}`
    })
    .join(' ')
}
