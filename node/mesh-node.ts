import { randomInt } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { Registry } from 'prom-client'
import { createMultiRaft, type MultiRaft, NONE, ROLE_NAMES, type Status } from '../consensus/index.js'
import { openRaftLogStore } from '../storage/index.js'
import { ActorHost, type ActorHostOptions } from './actor-host.js'
import { Authenticator, keepBootstrapToken, readAdminTokenFile, TokenAdmin } from './auth.js'
import { BackupAdmin } from './backup/routes.js'
import { type CatalogCommand, SYSTEM_GROUP } from './catalog.js'
import { ChaosFaults, chaosAddressProblem, chaosRoutes } from './chaos.js'
import { createGateway, listen } from './gateway.js'
import { Membership, type MembershipOptions } from './membership.js'
import { NodeMetrics } from './metrics.js'
import { createHost, type Host } from './p2p/host.js'
import { PeerLinks } from './p2p/links.js'
import { RttTable } from './p2p/rtt.js'
import { SeedDialer } from './p2p/seeds.js'
import { chatPages } from './pages.js'
import { PeerWatch } from './peer-watch.js'
import { Channel, LinkRaftTransport } from './raft-transport.js'
import { CallRouter } from './router.js'
import { Rpc } from './rpc.js'
import { SystemService } from './system.js'
import { startTracing } from './tracing.js'
import { createWsService, type WsOptions } from './ws/index.js'

/** Everything `actormesh start` needs; every field has an embedded default in the CLI. */
export interface MeshNodeConfig {
  dataDir: string
  listen: string[]
  seeds: string[]
  /** `host:port` of the HTTP gateway; port 0 picks a free one. */
  http: string
  clusterKeyFile?: string
  membership?: MembershipOptions
  /** One Raft tick, in milliseconds: heartbeats every tick, elections after 10–20 ticks. */
  tickMs?: number
  /** A namespace replica whose node is dead this long is replaced. */
  replicaDeadTimeoutMs?: number
  /** Applied entries after which a group compacts its log into a snapshot (driver default when unset). */
  snapshotEveryEntries?: number
  actors?: ActorHostOptions
  /** Chaos tests: accept a fault table over HTTP (node/chaos.ts); every address must be loopback. */
  chaos?: boolean
  /** WebSocket fan-out limits (connections, send queue, message size, ping, event buffers). */
  ws?: WsOptions
  /**
   * A file holding the admin token: auth is on from startup and the token is put into the catalog
   * (node/auth.ts). Required when the HTTP or a libp2p listen address is not loopback.
   */
  adminTokenFile?: string
  /** An OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`): loads the tracing SDK (node/tracing.ts). */
  otlpEndpoint?: string
}

/** What a node reachable beyond loopback needs (the error of `startMeshNode` and the CLI). */
export const ADMIN_TOKEN_REQUIRED =
  'a node reachable beyond loopback needs --admin-token-file FILE (or ACTORMESH_ADMIN_TOKEN_FILE)'

/** How long `drain` waits for leaderships to move by default, in milliseconds. */
export const DRAIN_TIMEOUT_MS = 5_000
/** How often `drain` looks whether leaderships have moved, in milliseconds. */
const DRAIN_POLL_MS = 20

/** Options of `MeshNode.drain`. */
export interface DrainOptions {
  /** How long to wait for leaderships to move, in milliseconds (default `DRAIN_TIMEOUT_MS`). */
  timeoutMs?: number
  signal?: AbortSignal
}

/** What a drain did. */
export interface DrainResult {
  /** Groups led here when the drain began that this node no longer leads. */
  moved: number
  /** Groups still led here when it ended: no live voter to move to, or the timeout passed. */
  kept: number
  elapsedMs: number
  /** For each group kept: its voters' membership states as this node saw them at the end. */
  keptVoters?: Record<string, Record<string, string>>
}

/** A running mesh node. */
export interface MeshNode {
  readonly host: Host
  readonly membership: Membership
  readonly links: PeerLinks
  readonly driver: MultiRaft
  readonly system: SystemService
  readonly actors: ActorHost
  readonly router: CallRouter
  readonly rtt: RttTable
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  /**
   * Prepares a graceful stop: no more placement, repair or balancing rounds, no new HTTP
   * connections, every leadership held here handed to the most caught-up live voter (waiting until
   * none is left or `timeoutMs` passes), then the driver's last turn persisted. Safe to call twice.
   */
  drain(options?: DrainOptions): Promise<DrainResult>
  /** Drains, then closes everything. */
  stop(): Promise<void>
}

/**
 * Starts a node: the libp2p host, the frame links (Raft and RPC channels), gossiped membership,
 * the seed dialer, `raft.db` with the multi-Raft driver on a shared tick, the `_system` group
 * (bootstrapped by the first node, joined by the others), and the HTTP gateway (`/healthz`,
 * `/v1/status`, `/v1/members`). Namespaces, actors and the full API come on top of this.
 */
export async function startMeshNode(
  config: MeshNodeConfig,
  log: Logger,
  options?: { signal?: AbortSignal },
): Promise<MeshNode> {
  options?.signal?.throwIfAborted()
  const chaosProblem = config.chaos ? chaosAddressProblem(config.listen, config.http) : undefined
  if (chaosProblem) throw new RangeError(`Cannot start with chaos faults: ${chaosProblem}`)
  const chaos = config.chaos ? new ChaosFaults(log.child({ component: 'chaos' })) : undefined
  const exposed = chaosAddressProblem(config.listen, config.http)
  if (exposed && config.adminTokenFile === undefined)
    throw new RangeError(`Cannot start without an admin token file: ${exposed} (${ADMIN_TOKEN_REQUIRED})`)
  const adminToken = config.adminTokenFile ? await readAdminTokenFile(config.adminTokenFile) : undefined
  await mkdir(config.dataDir, { recursive: true })
  const metricsRegistry = new Registry()
  const host = await createHost(
    {
      dataDir: config.dataDir,
      listen: config.listen,
      seeds: config.seeds,
      metricsRegistry,
      ...(config.clusterKeyFile ? { clusterKeyFile: config.clusterKeyFile } : {}),
      ...(chaos ? { connectionGater: chaos.gater } : {}),
    },
    options,
  )
  chaos?.attach(host)
  let gateway = ''
  let watch: PeerWatch | undefined
  let transport: LinkRaftTransport | undefined
  let rpc: Rpc | undefined
  const links = new PeerLinks(
    host,
    (from, frame) => {
      if (frame[0] === Channel.Raft) transport?.receive(from, frame.subarray(1))
      else if (frame[0] === Channel.Rpc) rpc?.receive(from, frame.subarray(1))
      else links.reportAbuse(from)
    },
    log.child({ component: 'links' }),
    {
      onDown: (peer, why) => {
        rpc?.peerDown(peer)
        // Only an established link that ended is evidence that a leader died; failed dials are
        // routine while nodes start and connect.
        if (why === 'closed') watch?.linkDown(peer)
      },
      faults: chaos,
    },
  )
  await links.start()
  transport = new LinkRaftTransport(links)
  rpc = new Rpc(links)
  const logStore = await openRaftLogStore({
    path: join(config.dataDir, 'raft.db'),
    logger: log.child({ component: 'raft-log' }),
  })
  const self = host.peerId.toString()
  const tracing = config.otlpEndpoint
    ? await startTracing({
        endpoint: config.otlpEndpoint,
        peer: self,
        log: log.child({ component: 'tracing' }),
      })
    : undefined
  // Idle groups quiesce after a second; membership wakes the groups of a peer it declares dead.
  const driver = createMultiRaft({
    id: self,
    transport,
    logStore,
    random: randomInt,
    logger: log.child({ component: 'raft' }),
    config: {
      raft: { quiesceAfterTicks: 20 },
      ...(config.snapshotEveryEntries !== undefined
        ? { snapshotEveryEntries: config.snapshotEveryEntries, snapshotKeepEntries: 0 }
        : {}),
    },
  })
  const membership = new Membership(
    host,
    () => ({ gateway, load: driver.groups().length, leads: leaderships(driver) }),
    Date.now(),
    log.child({ component: 'membership' }),
    undefined,
    config.membership,
  )
  membership.onChange(({ member }) => {
    if (member.state === 'dead') driver.peerDown(member.peer)
  })
  watch = new PeerWatch(host, driver, log.child({ component: 'peer-watch' }))
  const peerWatch = watch
  let system: SystemService | undefined
  const auth = new Authenticator({
    tokens: () => system?.catalog.tokens ?? new Map(),
    ...(adminToken !== undefined ? { adminToken } : {}),
  })
  let router: CallRouter | undefined
  const ws = createWsService(
    {
      self,
      rpc,
      leaderOf: (ns) => router?.leaderOf(ns) ?? '',
      voters: (ns) => system?.catalog.namespaces.get(ns)?.voters,
      // As the router: a peer membership has not heard of yet is worth trying.
      alive: (peer) => (membership.get(peer)?.state ?? 'alive') === 'alive',
      call: (req) => router!.call(req),
      authorize: (req, ns) => auth.authorize(req, { kind: 'namespace', namespace: ns }),
      log: log.child({ component: 'ws' }),
    },
    config.ws,
  )
  membership.onChange(({ member }) => {
    if (member.state === 'dead') ws.peerGone(member.peer)
  })
  const actors = new ActorHost(
    self,
    driver,
    (ns) => system?.hosted(ns),
    log.child({ component: 'actor-host' }),
    config.actors,
  )
  system = new SystemService(
    self,
    () => host.getMultiaddrs().map(String),
    driver,
    rpc,
    membership,
    log.child({ component: 'system' }),
    config.dataDir,
    {
      ...(config.replicaDeadTimeoutMs !== undefined
        ? { replicaDeadTimeoutMs: config.replicaDeadTimeoutMs }
        : {}),
      namespaceHooks: {
        restored: (ns, machine, index) => {
          ws.onRestored(ns, index)
          return actors.onRestored(ns, machine)
        },
        applied: (ns, entries) => {
          actors.onApplied(ns, entries)
          ws.onApplied(ns, entries)
        },
        installed: (ns, machine) => {
          ws.onInstalled(ns, machine)
          return actors.onHosted(ns, machine)
        },
      },
      onHosted: (ns, machine) => {
        ws.onHosted(ns, machine) // first and synchronously: before the group applies anything
        return actors.onHosted(ns, machine)
      },
      onUnhosted: (ns) => actors.onRemoved(ns),
    },
  )
  const sys = system
  const tokens = () => sys.catalog.tokens
  const submit = (command: CatalogCommand) => sys.submit(command)
  const rtt = new RttTable(host, log.child({ component: 'rtt' }))
  router = new CallRouter(
    self,
    actors,
    driver,
    sys,
    membership,
    rpc,
    (peers) => rtt.nearest(peers, self),
    log.child({ component: 'router' }),
  )
  const metrics = new NodeMetrics(
    {
      driver,
      logStore,
      actors: () => actors.runtime.stats(),
      ws: () => ws.stats(),
      members: () => membership.list(),
      membershipCounters: () => membership.counters,
      links: () => links.counters,
      connections: () => host.getConnections().length,
    },
    metricsRegistry,
  )
  router.onCallDone((req, ms, outcome) => metrics.observeCall(req, ms, outcome))
  const backup = new BackupAdmin({
    self,
    dataDir: config.dataDir,
    driver,
    system: sys,
    rpc,
    membership,
    leaderOf: (ns) => router?.leaderOf(ns) ?? '',
    log: log.child({ component: 'backup' }),
  })
  const seeds = new SeedDialer(host, config.seeds, log.child({ component: 'seeds' }))
  const chaosRoute = chaos ? chaosRoutes(chaos, driver) : undefined
  const pages = chatPages()
  const server = createGateway({
    peer: self,
    addrs: () => host.getMultiaddrs().map(String),
    status: () => {
      const { groups, activeGroups } = driver.stats()
      return {
        peer: self,
        system: sys.status(),
        raft: { groups, activeGroups },
        rttMs: rtt.snapshot(),
        ws: ws.stats(),
      }
    },
    members: () => ({
      self: { peer: self, addrs: host.getMultiaddrs().map(String) },
      members: membership.list().map((m) => ({
        peer: m.peer,
        state: m.state,
        gateway: m.gateway,
        addrs: m.addrs,
        rttMs: rtt.rttMs(m.peer),
      })),
    }),
    namespaces: () =>
      sys.listNamespaces().map((ns) => ({
        ...ns,
        // A node without a replica knows the leader from gossip.
        leader: ns.leader || router.leaderOf(ns.name),
        module: actors.moduleOf(ns.name) ?? null,
      })),
    createNamespace: (name, rf) => sys.createNamespace(name, rf),
    deleteNamespace: (name) => sys.deleteNamespace(name),
    removeNode: (peer) => sys.removeNode(peer),
    readiness: () => sys.readiness(),
    authorize: (req, access) => auth.authorize(req, access),
    tokens: new TokenAdmin({ submit, tokens, namespaceExists: (name) => sys.catalog.namespaces.has(name) }),
    router,
    payloadBytesMax: actors.runtime.limits.payloadBytesMax,
    moduleBytesMax: config.actors?.moduleBytesMax ?? 8 << 20,
    // Prometheus scrapes and the chat page (/chat/) need no token (docs/gateway.md); the rest need admin.
    openRoutes: async (req, res, url) => (await metrics.route(req, res, url)) || pages.route(req, res, url),
    extraRoutes: async (req, res, url) =>
      (await backup.route(req, res, url)) || (chaosRoute !== undefined && (await chaosRoute(req, res, url))),
  })
  metrics.instrument(server)
  server.on('upgrade', (req, socket, head) => ws.handleUpgrade(req, socket, head))
  try {
    gateway = await listen(server, config.http)
  } catch (e) {
    await driver.close()
    await logStore.close()
    await host.stop()
    throw e
  }
  let gatewayClosed: Promise<void> | undefined
  const closeGateway = () => {
    gatewayClosed ??= new Promise<void>((resolve) => server.close(() => resolve()))
    return gatewayClosed
  }
  const ticker = setInterval(() => driver.tick(), config.tickMs ?? 50)
  membership.start()
  seeds.start()
  rtt.start()
  actors.start()
  sys.start(logStore.groups().includes(SYSTEM_GROUP), config.seeds.length > 0)
  const bootstrap = adminToken
    ? keepBootstrapToken({ adminToken, submit, tokens, log: log.child({ component: 'auth' }) })
    : undefined
  const drain = async (drainOptions?: DrainOptions): Promise<DrainResult> => {
    drainOptions?.signal?.throwIfAborted()
    sys.stop()
    ws.closeAll()
    void closeGateway()
    // The ticker keeps running: a transfer needs ticks to finish (or to time out and be asked again).
    const result = await moveLeaderships(
      driver,
      (peer) => membership.get(peer)?.state ?? 'unknown',
      drainOptions?.timeoutMs ?? DRAIN_TIMEOUT_MS,
      drainOptions?.signal,
    )
    await driver.whenIdle(drainOptions?.signal ? { signal: drainOptions.signal } : {})
    log.info(result, 'drained: leaderships moved away')
    return result
  }
  log.info({ peer: self, addrs: host.getMultiaddrs().map(String), gateway }, 'node started')
  return {
    host,
    membership,
    links,
    driver,
    system,
    actors,
    router,
    rtt,
    url: gateway,
    drain,
    async stop() {
      try {
        await drain()
      } catch (e) {
        log.warn({ err: String(e) }, 'drain failed; closing anyway')
      }
      sys.stop()
      bootstrap?.stop()
      peerWatch.stop()
      actors.stop()
      ws.stop()
      await rtt.stop()
      clearInterval(ticker)
      seeds.stop()
      membership.stop()
      rpc.close()
      await driver.close()
      await backup.close()
      await sys.closeNamespaces()
      await logStore.close()
      await links.close()
      await closeGateway()
      server.closeAllConnections()
      await host.stop()
      await tracing?.shutdown()
    },
  }
}

/**
 * Hands every group led here to its most caught-up live voter and waits, polling every
 * `DRAIN_POLL_MS`, until none with a live voter to move to is led here or `timeoutMs` passes. A
 * transfer that times out in Raft (one election timeout, same term) is asked for again.
 */
async function moveLeaderships(
  driver: MultiRaft,
  stateOf: (peer: string) => string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<DrainResult> {
  // A suspect peer is most likely alive but slow (a loaded machine misses a beat or two): a
  // transfer to it that fails times out in Raft and is asked again, whereas skipping it kept the
  // leadership here and the stop made the group elect anew.
  const isAlive = (peer: string) => {
    const state = stateOf(peer)
    return state !== 'unknown' && state !== 'dead'
  }
  const started = performance.now()
  const ledAtStart = leaderships(driver)
  // A group that comes back in a later term was handed back: its target is draining too (or a
  // balancer chose this node), so it is not asked again — two nodes stopping together would
  // otherwise pass their groups to and fro until the timeout.
  const handedTo = new Map<string, { peer: string; term: number }>()
  const handedBack = new Map<string, Set<string>>()
  for (;;) {
    let movable = 0
    for (const g of leaderships(driver)) {
      const status = driver.status(g)
      const last = handedTo.get(g)
      if (last && status.term > last.term) {
        handedBack.set(g, (handedBack.get(g) ?? new Set()).add(last.peer))
        handedTo.delete(g)
      }
      // Led by the driver's last Ready but no longer a leader in Raft (it stepped down and is
      // campaigning, say, on a loaded machine): neither movable nor stuck yet; look again.
      if (!status.progress) {
        movable++
        continue
      }
      const back = handedBack.get(g)
      const to = transferTarget(status, (peer) => isAlive(peer) && !back?.has(peer))
      if (to === undefined) continue
      movable++
      if (status.leadTransferee !== NONE) continue
      driver.transferLeadership(g, to)
      handedTo.set(g, { peer: to, term: status.term })
    }
    if (movable === 0 || performance.now() - started >= timeoutMs) break
    await sleep(DRAIN_POLL_MS, undefined, signal ? { signal } : {})
  }
  const still = new Set(leaderships(driver))
  const result: DrainResult = {
    moved: ledAtStart.filter((g) => !still.has(g)).length,
    kept: still.size,
    elapsedMs: Math.round(performance.now() - started),
  }
  if (still.size > 0) {
    // What an operator needs to see why: the voters of each kept group and how membership saw them.
    result.keptVoters = {}
    for (const g of still) {
      const status = driver.status(g)
      const voters = status.conf.voters.filter((p) => p !== driver.id)
      result.keptVoters[g] = {
        role: ROLE_NAMES[status.role],
        ...Object.fromEntries(voters.map((p) => [p, stateOf(p)])),
      }
    }
  }
  return result
}

/**
 * The voter a leader should hand its group to: the live voter (never a learner, never itself) whose
 * log matches the most, so the transfer needs the least catching up; ties go to the smaller peer id.
 * `undefined` when `status` is not a leader's or no other voter is alive.
 */
export function transferTarget(status: Status, isAlive: (peer: string) => boolean): string | undefined {
  if (!status.progress) return undefined
  let best: string | undefined
  let bestMatch = -1
  for (const peer of status.conf.voters) {
    const pr = status.progress[peer]
    if (peer === status.id || !pr || pr.isLearner || !isAlive(peer)) continue
    if (pr.match > bestMatch || (pr.match === bestMatch && best !== undefined && peer < best)) {
      best = peer
      bestMatch = pr.match
    }
  }
  return best
}

/** Groups this node leads (membership gossips them for routing). */
function leaderships(driver: MultiRaft): string[] {
  return driver.groups().filter((g) => driver.leader(g) === driver.id)
}
