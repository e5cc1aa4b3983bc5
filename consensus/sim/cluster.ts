import { ProposalDroppedError } from '../errors.js'
import { MemoryStorage } from '../memory-storage.js'
import {
  type ConfChange,
  ConfChangeType,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  type ReadState,
} from '../types.js'
import { InvariantChecker, InvariantViolation } from './invariants.js'
import { type MessageFaults, Network, NO_FAULTS } from './network.js'
import { type BrokenMode, type CrashPoint, SimNode, type SimRaftSettings } from './node.js'
import type { Prng } from './prng.js'

/** Counters of a run, reported in its result. */
export interface ClusterStats {
  ticks: number
  proposals: number
  proposalsDropped: number
  readIndexes: number
  readsServed: number
  /** ReadIndex answers checked for linearizability. */
  readsChecked: number
  transfers: number
  confChangesProposed: number
  confChangesApplied: number
  leadersElected: number
  crashes: number
  restarts: number
  partitions: number
  snapshotsInstalled: number
}

/** Knobs of one cluster; run.ts draws them from the seed. */
export interface ClusterOptions {
  seed: number
  nodes: number
  /** Voters at bootstrap (≥ 3); the other nodes start outside the group and may be added. */
  initialVoters: number
  settings: SimRaftSettings
  faults: MessageFaults | undefined
  broken: BrokenMode | undefined
  /** Bound of the network's queue. */
  inflightMessagesMax: number
}

/** Read requests whose answer is awaited for the linearizability check, at most. */
const READS_TRACKED_MAX = 1024

/** Transport reports (failed snapshot, unreachable peer) queued within one settle, at most. */
const LOST_REPORTS_MAX = 1024

/** Readies handled per node per step at most: a Ready loop that never settles is a bug. */
const READY_ROUNDS_MAX = 64

/**
 * N simulated nodes, a network between them, an invariant checker watching every Ready, and a
 * client that proposes, reads, transfers leadership and changes membership. Each `step()` does one
 * random action and then handles every node's Ready until all settle.
 */
export class Cluster {
  readonly nodes: SimNode[]
  readonly network: Network
  readonly checker = new InvariantChecker()
  readonly stats: ClusterStats = {
    ticks: 0,
    proposals: 0,
    proposalsDropped: 0,
    readIndexes: 0,
    readsServed: 0,
    readsChecked: 0,
    transfers: 0,
    confChangesProposed: 0,
    confChangesApplied: 0,
    leadersElected: 0,
    crashes: 0,
    restarts: 0,
    partitions: 0,
    snapshotsInstalled: 0,
  }
  private readonly byId = new Map<NodeId, SimNode>()
  private nextPayload = 0
  private nextRead = 0
  /** Read context → the commit index known when the read was issued. */
  private readonly readsIssued = new Map<string, number>()
  /**
   * Messages lost on the wire whose sender the transport must tell. They are reported when the
   * current Readies are done: a message can be lost while its sender is still handling the Ready.
   */
  private lostReports: Message[] = []
  private confAppliedMax = 0
  private maxLeaderTerm = 0
  /** Set when the entry with this payload key is applied anywhere (liveness probe). */
  probeKey = ''
  probeApplied = false

  constructor(
    readonly options: ClusterOptions,
    private readonly rng: Prng,
  ) {
    this.network = new Network(rng, options.faults ?? NO_FAULTS, options.inflightMessagesMax)
    const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`)
    const voters = ids.slice(0, options.initialVoters)
    const env = {
      checker: this.checker,
      send: (m: Message) => this.network.send(m),
      onApplied: (_id: NodeId, e: Entry) => this.onApplied(e),
      onCrash: () => {
        this.stats.crashes++
      },
      onReadState: (id: NodeId, rs: ReadState) => this.onReadState(id, rs),
      broken: options.broken,
    }
    const snapshots = { everyEntries: 8, keepEntries: 2 }
    this.nodes = ids.map((id, i) => {
      const storage = MemoryStorage.bootstrap({ voters, learners: [] })
      return new SimNode(id, i, storage, options.seed, options.settings, snapshots, env)
    })
    for (const n of this.nodes) this.byId.set(n.id, n)
    this.checker.storageOf = (id) => this.byId.get(id)?.storage
    this.network.onLost = (m) => this.onLost(m)
  }

  /** Handles Readies of every live node until none has one. */
  settle(): void {
    for (let round = 0; ; round++) {
      let any = false
      for (const n of this.nodes) {
        if (n.handleReady()) any = true
        if (n.isLeader && n.term > this.maxLeaderTerm) {
          this.maxLeaderTerm = n.term
          this.stats.leadersElected++
        }
      }
      if (!any && this.lostReports.length === 0) return
      this.flushLostReports()
      if (round >= READY_ROUNDS_MAX) throw new InvariantViolation('liveness', 'Ready handling never settles')
    }
  }

  /** Delivers up to `count` ready messages (to live nodes; a message to a crashed node is lost). */
  deliver(count: number): number {
    let delivered = 0
    for (let i = 0; i < count; i++) {
      const m = this.network.take()
      if (m === undefined) break
      const to = this.byId.get(m.to)
      if (to?.raw === undefined) {
        this.onLost(m)
        continue
      }
      to.raw.step(m)
      delivered++
      this.settle()
      this.reportSnapshotDelivered(m)
    }
    return delivered
  }

  /** Ticks every live node (one logical clock), or only `only` (clock skew). */
  tick(only?: SimNode): void {
    this.stats.ticks++
    for (const n of only ? [only] : this.nodes) n.raw?.tick()
  }

  /** Proposes a fresh payload at a live node (followers forward to the leader). */
  propose(at: SimNode, payload?: string): void {
    // Unique, so that equal payloads mean the same proposal; padded to 0..199 extra bytes.
    const text = payload ?? `p${this.nextPayload++}.${'x'.repeat(this.rng.int(200))}`
    const data = new TextEncoder().encode(text)
    this.stats.proposals++
    this.guard(() => at.raw?.propose(data))
  }

  readIndex(at: SimNode): void {
    this.stats.readIndexes++
    const name = `r${this.nextRead++}`
    const context = new TextEncoder().encode(name)
    if (this.readsIssued.size < READS_TRACKED_MAX) this.readsIssued.set(name, this.checker.commitIndex)
    this.guard(() => at.raw?.readIndex(context))
  }

  /** Asks the leader to hand leadership to another voter (now and then to a non-voter, which it must refuse). */
  transfer(leader: SimNode): void {
    const voters = leader.raw?.status().conf.voters.filter((v) => v !== leader.id) ?? []
    const to = this.rng.chance(0.1)
      ? this.rng.pick(this.nodes).id
      : voters.length > 0
        ? this.rng.pick(voters)
        : undefined
    if (to === undefined) return
    this.stats.transfers++
    leader.raw?.transferLeadership(to)
    this.settle()
  }

  /** One membership change at the leader: promote a learner, add a learner, or remove a voter (≥ 3 stay). */
  changeMembership(leader: SimNode): void {
    const conf = leader.raw?.status().conf
    if (conf === undefined) return
    const outside = this.nodes.filter((n) => !conf.voters.includes(n.id) && !conf.learners.includes(n.id))
    let cc: ConfChange | undefined
    const choice = this.rng.int(3)
    if (choice === 0 && conf.learners.length > 0) {
      cc = { type: ConfChangeType.AddNode, node: this.rng.pick(conf.learners) }
    } else if (choice === 1 && outside.length > 0) {
      cc = { type: ConfChangeType.AddLearner, node: this.rng.pick(outside).id }
    } else if (conf.voters.length > 3) {
      cc = { type: ConfChangeType.RemoveNode, node: this.rng.pick(conf.voters) }
    }
    if (cc === undefined) return
    this.stats.confChangesProposed++
    this.guard(() => leader.raw?.proposeConfChange(cc))
  }

  /** Crashes a live node, at a random point of its current Ready if it has one. */
  /**
   * Schedules a crash of a live node at a random point of its next Ready (so that it strikes
   * between persisting and sending, or halfway through applying), or crashes it now.
   */
  crash(n: SimNode): void {
    const points: CrashPoint[] = ['before-persist', 'after-persist', 'after-send', 'mid-apply']
    if (this.rng.chance(0.75)) {
      n.pendingCrash = this.rng.pick(points)
      return
    }
    this.stats.crashes++
    n.crash()
  }

  restart(n: SimNode): void {
    this.stats.restarts++
    n.start()
    this.settle()
  }

  /** Removes every fault: partitions, message faults, held-back messages, crashed nodes. */
  heal(): void {
    this.network.faults = NO_FAULTS
    this.network.healPartitions()
    this.network.releaseDelayed()
    for (const n of this.nodes) n.pendingCrash = undefined
    for (const n of this.nodes) if (!n.up) this.restart(n)
  }

  /** The live node that leads with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined
    for (const n of this.nodes) if (n.up && n.isLeader && (best === undefined || n.term > best.term)) best = n
    return best
  }

  /** Totals that live on the nodes, folded into the stats. */
  finalStats(): ClusterStats {
    let reads = 0
    let snaps = 0
    for (const n of this.nodes) {
      reads += n.readsServed
      snaps += n.snapshotsInstalled
    }
    return { ...this.stats, readsServed: reads, snapshotsInstalled: snaps }
  }

  /** A lost message: a transport reports failed snapshots, and sometimes an unreachable peer. */
  private onLost(m: Message): void {
    const report = m.type === MessageType.Snap || (m.type === MessageType.App && this.rng.chance(0.3))
    if (report && this.lostReports.length < LOST_REPORTS_MAX) this.lostReports.push(m)
  }

  private flushLostReports(): void {
    const reports = this.lostReports
    this.lostReports = []
    for (const m of reports) {
      const from = this.byId.get(m.from)?.raw
      if (m.type === MessageType.Snap) from?.reportSnapshot(m.to, false)
      else from?.reportUnreachable(m.to)
    }
  }

  /**
   * The transport's duty after sending a snapshot: tell the sender how it went, so its progress for
   * the follower leaves the snapshot state (etcd's ReportSnapshot).
   */
  private reportSnapshotDelivered(m: Message): void {
    if (m.type !== MessageType.Snap) return
    this.byId.get(m.from)?.raw?.reportSnapshot(m.to, true)
    this.settle()
  }

  private guard(f: () => void): void {
    try {
      f()
      this.settle()
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e
      this.stats.proposalsDropped++
    }
  }

  /**
   * A read point must cover every write committed before the read was issued (linearizability,
   * thesis §6.4). Lease reads rely on bounded clock drift, which single-node ticks break, so only
   * ReadIndex ('safe') answers are held to it.
   */
  private onReadState(id: NodeId, rs: ReadState): void {
    const name = new TextDecoder().decode(rs.context)
    const issuedAt = this.readsIssued.get(name)
    if (issuedAt === undefined) return
    this.readsIssued.delete(name)
    if (this.options.settings.readOnly !== 'safe') return
    this.stats.readsChecked++
    if (rs.index < issuedAt) {
      throw new InvariantViolation(
        'linearizable-read',
        `'${id}' got read point ${rs.index} for '${name}', issued after commit ${issuedAt}`,
      )
    }
  }

  private onApplied(e: Entry): void {
    if (e.type === EntryType.ConfChange && e.index > this.confAppliedMax) {
      this.confAppliedMax = e.index
      this.stats.confChangesApplied++
    }
    if (this.probeKey !== '' && e.type === EntryType.Normal && e.data.byteLength === this.probeKey.length) {
      if (new TextDecoder().decode(e.data) === this.probeKey) this.probeApplied = true
    }
  }
}
