import type { Logger } from 'pino'
import { ConfChangeType, type ConfState, type MultiRaft, Role } from '../consensus/index.js'
import {
  Catalog,
  type CatalogCommand,
  type CatalogNamespace,
  type CatalogResult,
  encodeCommand,
  SYSTEM_GROUP,
  validateCommand,
} from './catalog.js'
import { NamespaceNotFoundError, NodeError, NodeNotFoundError } from './errors.js'
import type { Membership } from './membership.js'
import type { NamespaceHooks, NamespaceStateMachine } from './namespace-group.js'
import { NamespaceHosting } from './namespace-hosting.js'
import { NamespaceSnapshots } from './namespace-snapshot.js'
import { balanceLeaders, type NodeView, pickReplicas, type RepairStep, repairStep } from './placement.js'
import type { Rpc } from './rpc.js'

/** How many `_system` members vote; the rest are learners (DESIGN.md: voters up to 5). */
export const SYSTEM_VOTERS_MAX = 5

export interface SystemOptions {
  /** How often a joining node retries, and the leader runs its upkeep, in milliseconds. */
  intervalMs?: number
  /** A replica's node dead this long is replaced (learner, catch up, promote, remove). */
  replicaDeadTimeoutMs?: number
  /** Told after every applied batch of a hosted namespace. */
  namespaceHooks?: NamespaceHooks
  /** Told when this node starts hosting a namespace replica (its store is open, its group created). */
  onHosted?: (name: string, machine: NamespaceStateMachine) => void | Promise<void>
  /** Told when this node stops hosting a deleted namespace, before its group and store go. */
  onUnhosted?: (name: string) => void
}

/** Catalog commands any node may submit through the `_system` leader (`sys.catalog`). */
const SUBMITTABLE = new Set<CatalogCommand['op']>(['ns-delete', 'token-put', 'token-delete'])

/** The answer to `sys.join`: the membership the joiner must create its `_system` replica with. */
interface JoinAnswer {
  conf: ConfState
}

/** Thrown by a node that does not lead `_system`; carries the leader it knows. */
class NotLeaderError extends Error {
  readonly code = 'ACTORMESH_NOT_LEADER'
  readonly details: { leader: string }
  constructor(leader: string) {
    super(`Not the leader of '${SYSTEM_GROUP}'${leader ? `; try ${leader}` : ''}`)
    this.details = { leader }
  }
}

/** How often the rounds look at every namespace when neither the catalog nor membership changed. */
const SCAN_EVERY_MS = 2_000
/** A round waits this long for its first ReadIndex on `_system` (see `catalogSynced`). */
const CATALOG_SYNC_WAIT_MS = 3_000

/**
 * The `_system` group on one node: the first node (no seeds, no state) bootstraps it alone; a
 * joining node asks any member to join (`sys.join`, answered by the leader) and creates its replica
 * with the membership the leader returns — never empty (see docs/architecture.md, the joiner
 * rule). The leader records the node in the catalog, adds it as a learner, and promotes learners
 * that have caught up while there are fewer than `SYSTEM_VOTERS_MAX` voters.
 */
export class SystemService {
  readonly catalog = new Catalog()
  private timer: NodeJS.Timeout | undefined
  private joined = false
  private busy = false
  private readonly intervalMs: number
  /** Namespace replicas hosted here (their LibSQL stores stay open while hosted). */
  private readonly hosting: NamespaceHosting
  private readonly replicaDeadTimeoutMs: number
  /** When each member was first seen not alive (local clock), for the repair timeout. */
  private readonly downSince = new Map<string, number>()
  private balanceAfterMs = 0
  /** What the last full round saw: scans of every namespace run again when it changed, or after `SCAN_EVERY_MS`. */
  private scanned = { catalogIndex: -1, atMs: 0, membership: true }
  /**
   * A ReadIndex on `_system` succeeded since this process started: the catalog is at least as new
   * as when the process started. Hosting waits for it, because the catalog a restarted node
   * replays from its own disk may be old: it may still list a namespace that was deleted and
   * created again meanwhile, and hosting that from the old replica's files would run a stale Raft
   * group (an old term and log) beside the new one.
   */
  private catalogSynced = false
  /** Serves and pulls namespace snapshots (`ns.snap.*`). */
  private readonly snapshots: NamespaceSnapshots

  constructor(
    private readonly self: string,
    private readonly addrs: () => string[],
    private readonly driver: MultiRaft,
    private readonly rpc: Rpc,
    private readonly membership: Membership,
    private readonly log: Logger,
    dataDir: string,
    options: SystemOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 300
    membership.onChange(() => {
      this.scanned.membership = true
    })
    this.replicaDeadTimeoutMs = options.replicaDeadTimeoutMs ?? 10_000
    rpc.handle('ns.conf', (_from, payload) => this.handleNamespaceConf(payload))
    rpc.handle('ns.status', async (_from, payload) => this.handleNamespaceStatus(payload))
    rpc.handle('ns.transfer', async (_from, payload) => this.handleTransfer(payload))
    rpc.handle('sys.join', (from, payload) => this.handleJoin(from, payload))
    rpc.handle('sys.ns.create', (_from, payload) => this.handleCreate(payload))
    rpc.handle('sys.module', (_from, payload) => this.handleModule(payload))
    rpc.handle('sys.catalog', (_from, payload) => this.handleSubmit(payload))
    rpc.handle('sys.node.remove', (_from, payload) => this.handleRemoveNode(payload))
    this.snapshots = new NamespaceSnapshots(
      self,
      rpc,
      (name) => this.hosted(name)?.store,
      log.child({ component: 'snapshots' }),
    )
    this.hosting = new NamespaceHosting({
      self,
      dataDir,
      driver,
      snapshots: this.snapshots,
      log,
      ...(options.namespaceHooks ? { hooks: options.namespaceHooks } : {}),
      ...(options.onHosted ? { onHosted: options.onHosted } : {}),
      ...(options.onUnhosted ? { onUnhosted: options.onUnhosted } : {}),
    })
    rpc.handle('ns.snap.open', (from, payload, signal) => this.snapshots.open(from, payload, signal))
    rpc.handle('ns.snap.chunk', (from, payload) => this.snapshots.chunk(from, payload))
    rpc.handle('ns.snap.close', (from, payload) => this.snapshots.close(from, payload))
  }

  /**
   * Creates a namespace: validated here, then placed by the `_system` leader (forwarded to it
   * over RPC when this node does not lead). Resolves with the catalog record.
   */
  async createNamespace(
    name: string,
    replicationFactor = 3,
    options?: { signal?: AbortSignal },
  ): Promise<CatalogNamespace> {
    options?.signal?.throwIfAborted()
    validateCommand({ op: 'ns-create', name, replicationFactor, voters: ['placeholder'] })
    const st = this.status()
    if (st.joined && st.leader === this.self) return this.handleCreate({ name, replicationFactor })
    if (!st.leader) throw new NotLeaderError('')
    return (await this.rpc.request(
      st.leader,
      'sys.ns.create',
      { name, replicationFactor },
      { timeoutMs: 10_000 },
    )) as CatalogNamespace
  }

  /**
   * Deletes a namespace from the catalog (through the `_system` leader). Every replica notices in
   * `reconcile` and removes its group, store and files; calls to it answer 404 from then on.
   */
  async deleteNamespace(name: string, options?: { signal?: AbortSignal }): Promise<{ deleted: string }> {
    options?.signal?.throwIfAborted()
    const result = await this.submit({ op: 'ns-delete', name }, options)
    if (!result.ok && result.code === 'not-found') throw new NamespaceNotFoundError(name)
    if (!result.ok) throw new Error(result.message)
    return { deleted: name }
  }

  /**
   * Proposes a catalog command of `SUBMITTABLE` through the `_system` leader (forwarded over RPC
   * when this node does not lead) and resolves with what applying it did.
   */
  async submit(command: CatalogCommand, options?: { signal?: AbortSignal }): Promise<CatalogResult> {
    options?.signal?.throwIfAborted()
    if (!SUBMITTABLE.has(command.op)) throw new TypeError(`Cannot submit catalog command '${command.op}'`)
    validateCommand(command)
    const st = this.status()
    if (st.joined && st.leader === this.self) return this.handleSubmit(command)
    if (!st.leader) throw new NotLeaderError('')
    return (await this.rpc.request(st.leader, 'sys.catalog', command, {
      timeoutMs: 10_000,
      ...(options?.signal ? { signal: options.signal } : {}),
    })) as CatalogResult
  }

  private async handleSubmit(payload: unknown): Promise<CatalogResult> {
    const command = payload as CatalogCommand
    if (!SUBMITTABLE.has(command?.op)) throw new TypeError(`Cannot submit catalog command '${command?.op}'`)
    validateCommand(command)
    const st = this.joined ? this.driver.status(SYSTEM_GROUP) : undefined
    if (!st || st.role !== Role.Leader) throw new NotLeaderError(st?.lead ?? '')
    const index = await this.driver.propose(SYSTEM_GROUP, encodeCommand(command))
    return this.catalog.result(index) ?? { ok: true }
  }

  /**
   * Removes a node for good (decommission): out of `_system`'s voters or learners and out of the
   * catalog, through the `_system` leader. Namespace repair then replaces its replicas at once (a
   * node outside `_system` counts as dead). Stop the node first — SIGTERM hands its leaderships
   * over — and do not restart it on its data. Refused for the `_system` leader itself, and when
   * `_system` would be left without a live majority.
   */
  async removeNode(peer: string): Promise<{ removed: string }> {
    const st = this.status()
    if (st.joined && st.leader === this.self) return this.handleRemoveNode({ peer })
    if (!st.leader) throw new NotLeaderError('')
    return (await this.rpc.request(st.leader, 'sys.node.remove', { peer }, { timeoutMs: 15_000 })) as {
      removed: string
    }
  }

  private async handleRemoveNode(payload: unknown): Promise<{ removed: string }> {
    const { peer } = (payload ?? {}) as { peer?: unknown }
    if (typeof peer !== 'string' || peer.length === 0 || peer.length > 128)
      throw new TypeError("Cannot remove a node: 'peer' must be a peer id")
    const st = this.joined ? this.driver.status(SYSTEM_GROUP) : undefined
    if (!st || st.role !== Role.Leader) throw new NotLeaderError(st?.lead ?? '')
    const conflict = (why: string) =>
      new NodeError('ACTORMESH_CONFLICT', `Cannot remove node '${peer}': ${why}`, false)
    if (peer === this.self)
      throw conflict(`it leads ${SYSTEM_GROUP}; stop it (SIGTERM hands the leadership over) and ask again`)
    const member = st.conf.voters.includes(peer) || st.conf.learners.includes(peer)
    if (!member && !this.catalog.nodes.has(peer)) throw new NodeNotFoundError(peer)
    if (st.conf.voters.includes(peer)) {
      const rest = st.conf.voters.filter((p) => p !== peer)
      const live = rest.filter((p) => p === this.self || this.membership.get(p)?.state === 'alive')
      if (live.length < Math.floor(rest.length / 2) + 1)
        throw conflict(`${SYSTEM_GROUP} would be left with ${live.length} live of ${rest.length} voters`)
    }
    if (member)
      await this.driver.proposeConfChange(SYSTEM_GROUP, { type: ConfChangeType.RemoveNode, node: peer })
    if (this.catalog.nodes.has(peer))
      await this.driver.propose(SYSTEM_GROUP, encodeCommand({ op: 'node-remove', peer }))
    this.scanned.membership = true
    this.log.info({ peer }, 'removed node from the cluster')
    return { removed: peer }
  }

  /** Records a namespace's deployed module hash in the catalog (through the `_system` leader). */
  async recordModule(name: string, hash: string): Promise<void> {
    validateCommand({ op: 'module-deploy', name, hash })
    const st = this.status()
    if (st.joined && st.leader === this.self) {
      await this.handleModule({ name, hash })
      return
    }
    if (!st.leader) throw new NotLeaderError('')
    await this.rpc.request(st.leader, 'sys.module', { name, hash }, { timeoutMs: 10_000 })
  }

  private async handleModule(payload: unknown): Promise<{ ok: true }> {
    const { name, hash } = (payload ?? {}) as { name?: unknown; hash?: unknown }
    if (typeof name !== 'string' || typeof hash !== 'string')
      throw new TypeError('Cannot record a module: name and hash are required')
    const st = this.joined ? this.driver.status(SYSTEM_GROUP) : undefined
    if (!st || st.role !== Role.Leader) throw new NotLeaderError(st?.lead ?? '')
    if (this.catalog.namespaces.get(name)?.moduleHash === hash) return { ok: true }
    await this.driver.propose(
      SYSTEM_GROUP,
      encodeCommand(validateCommand({ op: 'module-deploy', name, hash })),
    )
    return { ok: true }
  }

  /** The namespaces the catalog holds here, with this node's view of each group's leader. */
  listNamespaces(): Array<CatalogNamespace & { leader: string }> {
    return [...this.catalog.namespaces.values()].map((ns) => ({
      ...ns,
      leader: this.hosted(ns.name) ? this.driver.leader(ns.name) : '',
    }))
  }

  /**
   * Whether this node can serve (`/readyz`): it has joined `_system`, knows `_system`'s leader,
   * and knows a leader of every namespace it hosts. `missing` names what is not there yet.
   */
  readiness(): { ready: boolean; missing: string[] } {
    const st = this.status()
    if (!st.joined) return { ready: false, missing: [`not joined to ${SYSTEM_GROUP}`] }
    const missing = st.leader ? [] : [`no known leader of ${SYSTEM_GROUP}`]
    const leaderless = this.hosting.names().filter((ns) => !this.driver.leader(ns))
    if (leaderless.length > 0) {
      const some = leaderless.slice(0, 10).join(', ')
      missing.push(`no known leader of ${leaderless.length} hosted namespace(s): ${some}`)
    }
    return { ready: missing.length === 0, missing }
  }

  /** The state machine (and store) of a namespace hosted here, if it is. */
  hosted(name: string): NamespaceStateMachine | undefined {
    return this.hosting.current(name, this.catalog.namespaces.get(name)?.createdIndex)
  }

  /** Closes the namespace stores hosted here (the driver is closed by the node first). */
  async closeNamespaces(): Promise<void> {
    await this.snapshots.closeAll()
    await this.hosting.closeAll()
  }

  private async handleCreate(payload: unknown): Promise<CatalogNamespace> {
    const { name, replicationFactor } = (payload ?? {}) as { name?: unknown; replicationFactor?: unknown }
    if (typeof name !== 'string' || typeof replicationFactor !== 'number') {
      throw new TypeError('Cannot create a namespace: name and replicationFactor are required')
    }
    const st = this.joined ? this.driver.status(SYSTEM_GROUP) : undefined
    if (!st || st.role !== Role.Leader) throw new NotLeaderError(st?.lead ?? '')
    const existing = this.catalog.namespaces.get(name)
    if (existing)
      throw Object.assign(new Error(`Namespace '${name}' already exists`), { code: 'ACTORMESH_CONFLICT' })
    const voters = pickReplicas(this.nodeViews(), replicationFactor)
    const command = validateCommand({ op: 'ns-create', name, replicationFactor, voters })
    const index = await this.driver.propose(SYSTEM_GROUP, encodeCommand(command))
    const result = this.catalog.result(index)
    if (result && !result.ok) throw Object.assign(new Error(result.message), { code: 'ACTORMESH_CONFLICT' })
    return this.catalog.namespaces.get(name)!
  }

  /** Live nodes with their replica counts, for placement (this node included). */
  private nodeViews(): NodeView[] {
    const count = new Map<string, number>()
    for (const ns of this.catalog.namespaces.values()) {
      for (const p of [...ns.voters, ...ns.learners]) count.set(p, (count.get(p) ?? 0) + 1)
    }
    const live = new Set([this.self, ...this.membership.alive().map((m) => m.peer)])
    const members = this.driver.status(SYSTEM_GROUP).conf
    return [...members.voters, ...members.learners]
      .filter((p) => live.has(p))
      .map((peer) => ({ peer, alive: true, deadForMs: 0, replicas: count.get(peer) ?? 0 }))
  }

  /** Starts hosting `_system`: restarts it from the log store, bootstraps it, or joins it. */
  start(hasState: boolean, seeded: boolean): void {
    if (hasState) {
      this.driver.createGroup(SYSTEM_GROUP, { stateMachine: this.catalog })
      this.joined = true
    } else if (!seeded) {
      this.driver.createGroup(SYSTEM_GROUP, {
        bootstrap: { voters: [this.self], learners: [] },
        stateMachine: this.catalog,
      })
      this.driver.campaign(SYSTEM_GROUP)
      this.joined = true
    }
    this.timer = setInterval(() => void this.round(), this.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Leader and membership of `_system` as this node sees them. */
  status(): { joined: boolean; leader: string; term: number; voters: string[]; learners: string[] } {
    if (!this.joined) return { joined: false, leader: '', term: 0, voters: [], learners: [] }
    const st = this.driver.status(SYSTEM_GROUP)
    return {
      joined: true,
      leader: st.lead,
      term: st.term,
      voters: st.conf.voters,
      learners: st.conf.learners,
    }
  }

  private async round(): Promise<void> {
    if (this.busy) return
    this.busy = true
    try {
      if (!this.joined) await this.tryJoin()
      else {
        const leader = this.driver.status(SYSTEM_GROUP).role === Role.Leader
        if (leader) await this.upkeep()
        if (!this.catalogSynced) {
          await this.driver.readIndex(SYSTEM_GROUP, { signal: AbortSignal.timeout(CATALOG_SYNC_WAIT_MS) })
          this.catalogSynced = true
        }
        // Hosting, repair and balancing look at every namespace: with nothing new in the catalog
        // or membership they run every SCAN_EVERY_MS, not every round (1,000 idle namespaces:
        // these scans were most of an idle node's own CPU).
        const now = Date.now()
        const s = this.scanned
        if (s.membership || s.catalogIndex !== this.catalog.appliedIndex || now - s.atMs >= SCAN_EVERY_MS) {
          this.scanned = { catalogIndex: this.catalog.appliedIndex, atMs: now, membership: false }
          this.hosting.reconcile(this.catalog.namespaces)
          if (leader) {
            await this.repairNamespaces()
            await this.balance()
          }
        }
      }
    } catch (e) {
      this.log.debug({ err: String(e) }, 'system round failed; will retry')
    } finally {
      this.busy = false
    }
  }

  /** Asks alive members to let us join, following a leader hint once. */
  private async tryJoin(): Promise<void> {
    const candidates = this.membership.alive().map((m) => m.peer)
    for (const peer of candidates) {
      let target = peer
      for (let hop = 0; hop < 2; hop++) {
        try {
          const answer = (await this.rpc.request(
            target,
            'sys.join',
            { addrs: this.addrs() },
            { timeoutMs: 5_000 },
          )) as JoinAnswer
          this.driver.createGroup(SYSTEM_GROUP, { bootstrap: answer.conf, stateMachine: this.catalog })
          this.joined = true
          this.log.info({ via: target }, `joined ${SYSTEM_GROUP}`)
          return
        } catch (e) {
          const leader = (e as { details?: { leader?: unknown } }).details?.leader
          if (typeof leader !== 'string' || leader === '' || leader === target) break
          target = leader
        }
      }
    }
  }

  /** Leader side of a join: record the node, add it as a learner, answer with the membership. */
  private async handleJoin(from: string, payload: unknown): Promise<JoinAnswer> {
    const st = this.joined ? this.driver.status(SYSTEM_GROUP) : undefined
    if (!st || st.role !== Role.Leader) throw new NotLeaderError(st?.lead ?? '')
    const addrs = (payload as { addrs?: unknown })?.addrs
    const list = Array.isArray(addrs)
      ? addrs.filter((a): a is string => typeof a === 'string').slice(0, 16)
      : []
    if (!this.catalog.nodes.has(from)) {
      await this.driver.propose(SYSTEM_GROUP, encodeCommand({ op: 'node-join', peer: from, addrs: list }))
    }
    let conf = this.driver.status(SYSTEM_GROUP).conf
    if (!conf.voters.includes(from) && !conf.learners.includes(from)) {
      conf = await this.driver.proposeConfChange(SYSTEM_GROUP, {
        type: ConfChangeType.AddLearner,
        node: from,
      })
    }
    return { conf }
  }

  /** Leader upkeep: promote one caught-up learner while there are fewer than the voter maximum. */
  private async upkeep(): Promise<void> {
    const st = this.driver.status(SYSTEM_GROUP)
    if (st.conf.voters.length >= SYSTEM_VOTERS_MAX || !st.progress) return
    const ready = st.conf.learners.find((p) => {
      const pr = st.progress![p]
      const alive = this.membership.get(p)?.state === 'alive'
      return pr !== undefined && alive && pr.match >= st.commit
    })
    if (ready) {
      await this.driver.proposeConfChange(SYSTEM_GROUP, { type: ConfChangeType.AddNode, node: ready })
      this.log.info({ peer: ready }, `promoted to a ${SYSTEM_GROUP} voter`)
    }
  }

  /** One repair step for the first namespace that needs one (one change at a time, cluster-wide). */
  private async repairNamespaces(): Promise<void> {
    const now = Date.now()
    const views = new Map<string, NodeView>()
    for (const v of this.nodeViewsAll(now)) views.set(v.peer, v)
    for (const ns of this.catalog.namespaces.values()) {
      // Only sets with a learner or a replica that is not alive can need a step: no RPC otherwise.
      const healthy =
        ns.learners.length === 0 &&
        ns.voters.length >= ns.replicationFactor &&
        ns.voters.every((p) => views.get(p)?.alive)
      if (healthy) continue
      const leader = ns.voters.find((p) => views.get(p)?.alive) ?? ''
      const status = await this.namespaceStatus(
        ns.name,
        ns.voters.filter((p) => views.get(p)?.alive),
      )
      if (!status) continue
      const set = {
        namespace: ns.name,
        voters: status.conf.voters,
        learners: status.conf.learners,
        leader: status.lead || leader,
      }
      const caughtUp = (p: string) => (status.progress?.[p]?.match ?? -1) >= status.commit
      const step = repairStep(set, ns.replicationFactor, views, this.replicaDeadTimeoutMs, caughtUp)
      if (!step) continue
      await this.applyRepair(step, status.lead)
      return
    }
  }

  private async applyRepair(step: RepairStep, nsLeader: string): Promise<void> {
    const type =
      step.kind === 'add-learner'
        ? ConfChangeType.AddLearner
        : step.kind === 'promote'
          ? ConfChangeType.AddNode
          : ConfChangeType.RemoveNode
    const change = { type, node: step.peer }
    const conf = (
      nsLeader === this.self
        ? await this.handleNamespaceConf({ ns: step.namespace, change })
        : await this.rpc.request(nsLeader, 'ns.conf', { ns: step.namespace, change }, { timeoutMs: 10_000 })
    ) as ConfState
    await this.driver.propose(
      SYSTEM_GROUP,
      encodeCommand({
        op: 'ns-replicas',
        name: step.namespace,
        voters: conf.voters,
        learners: conf.learners,
      }),
    )
    this.log.info({ ns: step.namespace, step: step.kind, peer: step.peer }, 'repaired namespace replica set')
  }

  /**
   * Leader balancing: from the leaderships every node gossips, moves a few leaderships from nodes
   * that lead more than their fair share to the least-loaded live voter of the same group.
   */
  private async balance(): Promise<void> {
    // Gossip lags a beat behind a transfer: let the last moves show before judging again.
    if (Date.now() < this.balanceAfterMs) return
    const leaderOf = new Map<string, string>()
    for (const m of this.membership.alive()) for (const g of m.leads) leaderOf.set(g, m.peer)
    for (const g of this.driver.groups()) if (this.driver.leader(g) === this.self) leaderOf.set(g, this.self)
    const alive = new Set([this.self, ...this.membership.alive().map((m) => m.peer)])
    const sets = [...this.catalog.namespaces.values()]
      .filter((ns) => leaderOf.has(ns.name))
      .map((ns) => ({
        namespace: ns.name,
        voters: ns.voters,
        learners: ns.learners,
        leader: leaderOf.get(ns.name)!,
      }))
    const moves = balanceLeaders(sets, alive, 0, 3)
    if (moves.length > 0) this.balanceAfterMs = Date.now() + 2_000
    for (const t of moves) {
      try {
        if (t.from === this.self) this.driver.transferLeadership(t.namespace, t.to)
        else
          await this.rpc.request(t.from, 'ns.transfer', { ns: t.namespace, to: t.to }, { timeoutMs: 3_000 })
      } catch (e) {
        this.log.debug({ ns: t.namespace, err: String(e) }, 'leadership transfer request failed')
      }
    }
  }

  private handleTransfer(payload: unknown): { ok: true } {
    const { ns, to } = (payload ?? {}) as { ns?: unknown; to?: unknown }
    if (typeof ns !== 'string' || typeof to !== 'string' || !this.hosted(ns)) {
      throw new TypeError(`Namespace '${String(ns)}' is not hosted here`)
    }
    this.driver.transferLeadership(ns, to)
    return { ok: true }
  }

  /** Every `_system` member with liveness and how long it has been down. */
  private nodeViewsAll(now: number): NodeView[] {
    const count = new Map<string, number>()
    for (const ns of this.catalog.namespaces.values()) {
      for (const p of [...ns.voters, ...ns.learners]) count.set(p, (count.get(p) ?? 0) + 1)
    }
    const members = this.driver.status(SYSTEM_GROUP).conf
    return [...members.voters, ...members.learners].map((peer) => {
      const alive = peer === this.self || this.membership.get(peer)?.state === 'alive'
      if (alive) this.downSince.delete(peer)
      else if (!this.downSince.has(peer)) this.downSince.set(peer, now)
      return {
        peer,
        alive,
        deadForMs: alive ? 0 : now - this.downSince.get(peer)!,
        replicas: count.get(peer) ?? 0,
      }
    })
  }

  /** The namespace group's status from its leader (asking live replicas until one leads). */
  private async namespaceStatus(
    ns: string,
    replicas: string[],
  ): Promise<ReturnType<MultiRaft['status']> | undefined> {
    for (const peer of replicas) {
      try {
        const st = (
          peer === this.self
            ? this.handleNamespaceStatus({ ns })
            : await this.rpc.request(peer, 'ns.status', { ns }, { timeoutMs: 3_000 })
        ) as ReturnType<MultiRaft['status']>
        if (st.role === Role.Leader) return st
      } catch {
        // not hosted there yet, or unreachable: ask the next
      }
    }
    return undefined
  }

  private handleNamespaceStatus(payload: unknown): ReturnType<MultiRaft['status']> {
    const ns = (payload as { ns?: unknown })?.ns
    if (typeof ns !== 'string' || !this.hosted(ns))
      throw new TypeError(`Namespace '${String(ns)}' is not hosted here`)
    return this.driver.status(ns)
  }

  private async handleNamespaceConf(payload: unknown): Promise<ConfState> {
    const { ns, change } = (payload ?? {}) as { ns?: unknown; change?: { type?: unknown; node?: unknown } }
    if (typeof ns !== 'string' || !this.hosted(ns))
      throw new TypeError(`Namespace '${String(ns)}' is not hosted here`)
    if (!change || typeof change.node !== 'string' || typeof change.type !== 'number')
      throw new TypeError('Malformed conf change')
    return this.driver.proposeConfChange(ns, { type: change.type as ConfChangeType, node: change.node })
  }
}
