import { randomInt } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { createMultiRaft, type MultiRaft } from '../consensus/index.js'
import { openRaftLogStore } from '../storage/index.js'
import { SYSTEM_GROUP } from './catalog.js'
import { Membership, type MembershipOptions } from './membership.js'
import { createHost, type Host } from './p2p/host.js'
import { PeerLinks } from './p2p/links.js'
import { SeedDialer } from './p2p/seeds.js'
import { Channel, LinkRaftTransport } from './raft-transport.js'
import { Rpc } from './rpc.js'
import { SystemService } from './system.js'

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
}

/** A running mesh node. */
export interface MeshNode {
  readonly host: Host
  readonly membership: Membership
  readonly links: PeerLinks
  readonly driver: MultiRaft
  readonly system: SystemService
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
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
  await mkdir(config.dataDir, { recursive: true })
  const host = await createHost(
    {
      dataDir: config.dataDir,
      listen: config.listen,
      seeds: config.seeds,
      ...(config.clusterKeyFile ? { clusterKeyFile: config.clusterKeyFile } : {}),
    },
    options,
  )
  let gateway = ''
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
  )
  await links.start()
  transport = new LinkRaftTransport(links)
  rpc = new Rpc(links)
  const logStore = await openRaftLogStore({
    path: join(config.dataDir, 'raft.db'),
    logger: log.child({ component: 'raft-log' }),
  })
  const self = host.peerId.toString()
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
  const system = new SystemService(
    self,
    () => host.getMultiaddrs().map(String),
    driver,
    rpc,
    membership,
    log.child({ component: 'system' }),
    config.dataDir,
    config.replicaDeadTimeoutMs !== undefined ? { replicaDeadTimeoutMs: config.replicaDeadTimeoutMs } : {},
  )
  const seeds = new SeedDialer(host, config.seeds, log.child({ component: 'seeds' }))
  const server = createServer((req, res) => void handle(req, res, host, membership, system))
  try {
    gateway = await listen(server, config.http)
  } catch (e) {
    await driver.close()
    await logStore.close()
    await host.stop()
    throw e
  }
  const ticker = setInterval(() => driver.tick(), config.tickMs ?? 50)
  membership.start()
  seeds.start()
  system.start(logStore.groups().includes(SYSTEM_GROUP), config.seeds.length > 0)
  log.info({ peer: self, addrs: host.getMultiaddrs().map(String), gateway }, 'node started')
  return {
    host,
    membership,
    links,
    driver,
    system,
    url: gateway,
    async stop() {
      system.stop()
      clearInterval(ticker)
      seeds.stop()
      membership.stop()
      rpc.close()
      await driver.close()
      await system.closeNamespaces()
      await logStore.close()
      await links.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await host.stop()
    },
  }
}

/** Groups this node leads (membership gossips them for routing). */
function leaderships(driver: MultiRaft): string[] {
  return driver.groups().filter((g) => driver.leader(g) === driver.id)
}

function listen(server: Server, hostPort: string): Promise<string> {
  const at = hostPort.lastIndexOf(':')
  const host = at > 0 ? hostPort.slice(0, at).replace(/^\[|\]$/g, '') : '127.0.0.1'
  const port = Number(at >= 0 ? hostPort.slice(at + 1) : hostPort)
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`Cannot listen on '${hostPort}': the port must be an integer from 0 to 65535`)
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      const addr = server.address() as AddressInfo
      const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
      resolve(`http://${shown}:${addr.port}`)
    })
  })
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  host: Host,
  membership: Membership,
  system: SystemService,
): Promise<void> {
  const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(`${JSON.stringify(body)}\n`)
  }
  const path = (req.url ?? '/').split('?')[0]
  try {
    if (path === '/v1/namespaces' && req.method === 'POST') {
      const body = (await readJson(req)) as { name?: unknown; replicationFactor?: unknown }
      if (typeof body.name !== 'string')
        throw new TypeError("Cannot create a namespace: 'name' must be a string")
      const rf = body.replicationFactor === undefined ? 3 : body.replicationFactor
      if (typeof rf !== 'number')
        throw new TypeError("Cannot create a namespace: 'replicationFactor' must be a number")
      send(201, await system.createNamespace(body.name, rf))
      return
    }
    if (req.method !== 'GET') {
      send(405, { code: 'ACTORMESH_METHOD_NOT_ALLOWED', message: `Cannot ${req.method} '${path}'` })
      return
    }
    if (path === '/healthz') send(200, { ok: true, peer: host.peerId.toString() })
    else if (path === '/v1/status') send(200, { peer: host.peerId.toString(), system: system.status() })
    else if (path === '/v1/namespaces') send(200, { namespaces: system.listNamespaces() })
    else if (path === '/v1/members') {
      send(200, {
        self: { peer: host.peerId.toString(), addrs: host.getMultiaddrs().map(String) },
        members: membership
          .list()
          .map((m) => ({ peer: m.peer, state: m.state, gateway: m.gateway, addrs: m.addrs })),
      })
    } else send(404, { code: 'ACTORMESH_NOT_FOUND', message: `No route '${path}'` })
  } catch (e) {
    const { status, code, headers } = httpError(e)
    send(status, { code, message: (e as Error).message }, headers)
  }
}

/** Maps an error to its HTTP status and stable code (docs/errors.md). */
function httpError(e: unknown): { status: number; code: string; headers?: Record<string, string> } {
  if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError)
    return { status: 400, code: 'ACTORMESH_BAD_REQUEST' }
  const code = (e as { code?: unknown }).code
  if (code === 'ACTORMESH_CONFLICT') return { status: 409, code }
  if (code === 'ACTORMESH_BODY_TOO_LARGE') return { status: 413, code }
  if (
    code === 'ACTORMESH_NOT_LEADER' ||
    code === 'ACTORMESH_RPC_TIMEOUT' ||
    code === 'ACTORMESH_PEER_UNREACHABLE'
  ) {
    return { status: 503, code: String(code), headers: { 'retry-after': '1' } }
  }
  return { status: 500, code: typeof code === 'string' ? code : 'ACTORMESH_INTERNAL' }
}

/** Reads a JSON body of at most `bodyBytesMax` bytes. */
async function readJson(req: IncomingMessage, bodyBytesMax = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > bodyBytesMax) {
      throw Object.assign(new Error(`Request body is over ${bodyBytesMax} bytes`), {
        code: 'ACTORMESH_BODY_TOO_LARGE',
      })
    }
    chunks.push(chunk as Buffer)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
}
