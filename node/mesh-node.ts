import { mkdir } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Membership, type MembershipOptions } from './membership.js'
import { createHost, type Host } from './p2p/host.js'
import { PeerLinks } from './p2p/links.js'
import { SeedDialer } from './p2p/seeds.js'

/** Everything `actormesh start` needs; every field has an embedded default in the CLI. */
export interface MeshNodeConfig {
  dataDir: string
  listen: string[]
  seeds: string[]
  /** `host:port` of the HTTP gateway; port 0 picks a free one. */
  http: string
  clusterKeyFile?: string
  membership?: MembershipOptions
}

/** A running mesh node. */
export interface MeshNode {
  readonly host: Host
  readonly membership: Membership
  readonly links: PeerLinks
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  stop(): Promise<void>
}

/**
 * Starts a node: the libp2p host, the frame links, gossiped membership, the seed dialer and the
 * HTTP gateway (so far `/healthz` and `/v1/members`). Raft groups, actors and the full API are
 * added on top of this by the request-path work.
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
  const links = new PeerLinks(host, () => {}, log.child({ component: 'links' }))
  await links.start()
  const membership = new Membership(
    host,
    () => ({ gateway, load: 0, leads: [] }),
    Date.now(),
    log.child({ component: 'membership' }),
    undefined,
    config.membership,
  )
  const seeds = new SeedDialer(host, config.seeds, log.child({ component: 'seeds' }))
  const server = createServer((req, res) => handle(req, res, host, membership))
  try {
    gateway = await listen(server, config.http)
  } catch (e) {
    await host.stop()
    throw e
  }
  membership.start()
  seeds.start()
  log.info({ peer: host.peerId.toString(), addrs: host.getMultiaddrs().map(String), gateway }, 'node started')
  return {
    host,
    membership,
    links,
    url: gateway,
    async stop() {
      seeds.stop()
      membership.stop()
      await links.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await host.stop()
    },
  }
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

function handle(req: IncomingMessage, res: ServerResponse, host: Host, membership: Membership): void {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(`${JSON.stringify(body)}\n`)
  }
  const path = (req.url ?? '/').split('?')[0]
  if (req.method !== 'GET') {
    send(405, { code: 'ACTORMESH_METHOD_NOT_ALLOWED', message: `Cannot ${req.method} '${path}'` })
    return
  }
  if (path === '/healthz') {
    send(200, { ok: true, peer: host.peerId.toString() })
    return
  }
  if (path === '/v1/members') {
    send(200, {
      self: { peer: host.peerId.toString(), addrs: host.getMultiaddrs().map(String) },
      members: membership
        .list()
        .map((m) => ({ peer: m.peer, state: m.state, gateway: m.gateway, addrs: m.addrs })),
    })
    return
  }
  send(404, { code: 'ACTORMESH_NOT_FOUND', message: `No route '${path}'` })
}
