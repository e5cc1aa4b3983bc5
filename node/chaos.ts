/**
 * Network faults for chaos tests (`actormesh start --chaos`, loopback only): a fault table set
 * over HTTP that blocks peers (connection gater plus closing the connections that exist), and
 * drops or delays the link frames this node sends to given peers. Each node gets its own table,
 * so a partition is made by giving both sides theirs. Also reports every hosted group's Raft
 * status, so a test can check one leader per term per group.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ConnectionGater } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { type MultiRaft, ProgressState, Role } from '../consensus/index.js'
import type { Host } from './p2p/host.js'
import type { LinkFaults } from './p2p/links.js'

/** The faults one node applies. */
export interface FaultTable {
  /** Peers this node does not talk to: no connection either way; existing ones are closed. */
  block: string[]
  /** Milliseconds every link frame to a peer is held back before it is queued. */
  delay: Record<string, number>
  /** Probability (0 to 1) that a link frame to a peer is dropped. */
  drop: Record<string, number>
}

/** Peers a fault table may name, per field. */
export const FAULT_PEERS_MAX = 64
/** Longest delay a fault table may set, in milliseconds. */
export const FAULT_DELAY_MS_MAX = 10_000
/** Frames held back by delays at once; beyond it a frame is dropped instead. */
export const HELD_FRAMES_MAX = 20_000
/** Bytes of a fault table request. */
const FAULT_BODY_BYTES_MAX = 64 * 1024

const EMPTY: FaultTable = { block: [], delay: {}, drop: {} }

/**
 * Why `--chaos` must be refused for these addresses (a fault switch reachable over the network
 * would let anyone partition the cluster), or `undefined` when every listen and HTTP address is
 * loopback.
 */
export function chaosAddressProblem(listen: readonly string[], http: string): string | undefined {
  for (const addr of listen) {
    const m = /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)\//.exec(addr)
    if (!m || !isLoopback(m[2]!)) return `listen address '${addr}' is not loopback`
  }
  const at = http.lastIndexOf(':')
  const host = at > 0 ? http.slice(0, at).replace(/^\[|\]$/g, '') : ''
  if (!isLoopback(host)) return `HTTP address '${http}' is not loopback`
  return undefined
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/** Validates a fault table from JSON; throws `TypeError`/`RangeError` naming the bad value. */
export function parseFaultTable(body: unknown): FaultTable {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new TypeError(`Bad fault table '${JSON.stringify(body)}': expected an object`)
  const b = body as Record<string, unknown>
  for (const key of Object.keys(b)) {
    if (key !== 'block' && key !== 'delay' && key !== 'drop')
      throw new TypeError(`Bad fault table field '${key}': expected block, delay or drop`)
  }
  const block = b.block ?? []
  if (!Array.isArray(block) || !block.every((p) => typeof p === 'string'))
    throw new TypeError(`Bad fault table 'block' ${JSON.stringify(block)}: expected an array of peer ids`)
  if (block.length > FAULT_PEERS_MAX)
    throw new RangeError(`Bad fault table 'block': ${block.length} peers, at most ${FAULT_PEERS_MAX}`)
  for (const p of block) checkPeer(p)
  return {
    block: [...new Set(block as string[])],
    delay: peerNumbers(b.delay, 'delay', 0, FAULT_DELAY_MS_MAX),
    drop: peerNumbers(b.drop, 'drop', 0, 1),
  }
}

function checkPeer(peer: string): void {
  try {
    peerIdFromString(peer)
  } catch {
    throw new TypeError(`Bad peer id '${peer}' in a fault table`)
  }
}

function peerNumbers(value: unknown, field: string, min: number, max: number): Record<string, number> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TypeError(`Bad fault table '${field}' ${JSON.stringify(value)}: expected {peer: number}`)
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length > FAULT_PEERS_MAX)
    throw new RangeError(`Bad fault table '${field}': ${entries.length} peers, at most ${FAULT_PEERS_MAX}`)
  for (const [peer, n] of entries) {
    checkPeer(peer)
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max)
      throw new RangeError(
        `Bad fault table '${field}' for '${peer}': ${JSON.stringify(n)} is not in ${min}..${max}`,
      )
  }
  return Object.fromEntries(entries) as Record<string, number>
}

/** Counters of what the faults did, for the route's answer. */
export interface FaultCounters {
  framesDropped: number
  framesDelayed: number
  connectionsDenied: number
}

/** The fault switch of one node: its gater, its link hook and its table. */
export class ChaosFaults implements LinkFaults {
  readonly counters: FaultCounters = {
    framesDropped: 0,
    framesDelayed: 0,
    connectionsDenied: 0,
  }
  private table: FaultTable = EMPTY
  private blocked = new Set<string>()
  private held = 0
  private host: Host | undefined

  /** Denies every connection to or from a blocked peer, whoever dials. */
  readonly gater: ConnectionGater = {
    denyDialPeer: (peer) => this.deny(peer.toString()),
    denyInboundEncryptedConnection: (peer) => this.deny(peer.toString()),
    denyOutboundEncryptedConnection: (peer) => this.deny(peer.toString()),
  }

  /** `random` draws the drops (a uniform number in [0, 1)). */
  constructor(
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  /** The host whose connections a block closes (it is created with `gater`, so after it). */
  attach(host: Host): void {
    this.host = host
  }

  faults(): FaultTable {
    return this.table
  }

  /** Replaces the table; connections to newly blocked peers are closed at once. */
  async set(table: FaultTable): Promise<void> {
    this.table = table
    this.blocked = new Set(table.block)
    this.log.warn({ faults: table }, 'chaos: fault table set')
    if (!this.host) return
    for (const peer of table.block) {
      await this.host.hangUp(peerIdFromString(peer)).catch((e: unknown) => {
        this.log.debug({ peer, err: String(e) }, 'chaos: closing connections failed')
      })
    }
  }

  /**
   * Link hook: drops or holds back a frame to `peer`; true when it took the frame. Frames to a
   * blocked peer pass: the link then tries to connect, the gater refuses, and the link reports the
   * peer down (requests waiting on it fail at once), as on a real partition with refused
   * connections.
   */
  intercept(peer: string, deliver: () => void): boolean {
    const drop = this.table.drop[peer] ?? 0
    if (drop > 0 && this.random() < drop) {
      this.counters.framesDropped++
      return true
    }
    const delayMs = this.table.delay[peer] ?? 0
    if (delayMs <= 0) return false
    this.counters.framesDelayed++
    if (this.held >= HELD_FRAMES_MAX) {
      this.counters.framesDropped++
      return true
    }
    this.held++
    // One delay per peer keeps the frames in order (timers of equal length fire in order).
    setTimeout(() => {
      this.held--
      deliver()
    }, delayMs).unref()
    return true
  }

  private deny(peer: string): boolean {
    if (!this.blocked.has(peer)) return false
    this.counters.connectionsDenied++
    return true
  }
}

/** Raft status of every group hosted here, as the chaos route reports it. */
export function groupStatuses(driver: MultiRaft): Array<{
  group: string
  role: string
  term: number
  lead: string
  commit: number
  applied: number
  /** On a leader: each follower's match index, next index and replication state. */
  progress?: Record<string, { match: number; next: number; state: string }>
}> {
  const names: Record<number, string> = {
    [Role.Follower]: 'follower',
    [Role.Candidate]: 'candidate',
    [Role.PreCandidate]: 'pre-candidate',
    [Role.Leader]: 'leader',
  }
  return driver.groups().map((group) => {
    const st = driver.status(group)
    return {
      group,
      role: names[st.role] ?? String(st.role),
      term: st.term,
      lead: st.lead,
      commit: st.commit,
      applied: st.applied,
      ...(st.progress
        ? {
            progress: Object.fromEntries(
              Object.entries(st.progress).map(([peer, p]) => [
                peer,
                { match: p.match, next: p.next, state: PROGRESS_STATES[p.state] ?? String(p.state) },
              ]),
            ),
          }
        : {}),
    }
  })
}

/** `ProgressState` values by name, for reports. */
const PROGRESS_STATES: Record<number, string> = {
  [ProgressState.Probe]: 'probe',
  [ProgressState.Replicate]: 'replicate',
  [ProgressState.Snapshot]: 'snapshot',
}

/**
 * The chaos admin routes, for the gateway's `extraRoutes` hook: `GET`/`PUT /v1/chaos/faults`
 * (the table and counters; PUT replaces the table) and `GET /v1/chaos/groups` (every hosted
 * group's role, term and leader). Resolves false for any other path.
 */
export function chaosRoutes(
  faults: ChaosFaults,
  driver: MultiRaft,
): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean> {
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(`${JSON.stringify(body)}\n`)
  }
  return async (req, res, url) => {
    if (url.pathname === '/v1/chaos/groups' && req.method === 'GET') {
      send(res, 200, { groups: groupStatuses(driver) })
      return true
    }
    if (url.pathname !== '/v1/chaos/faults') return false
    if (req.method === 'PUT') {
      let table: FaultTable
      try {
        table = parseFaultTable(JSON.parse(await readText(req)))
      } catch (e) {
        send(res, 400, { code: 'ACTORMESH_BAD_REQUEST', message: (e as Error).message })
        return true
      }
      await faults.set(table)
    } else if (req.method !== 'GET') {
      send(res, 405, {
        code: 'ACTORMESH_METHOD_NOT_ALLOWED',
        message: `Cannot ${req.method} '${url.pathname}'`,
      })
      return true
    }
    send(res, 200, { faults: faults.faults(), counters: faults.counters })
    return true
  }
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > FAULT_BODY_BYTES_MAX) throw new RangeError(`Fault table is over ${FAULT_BODY_BYTES_MAX} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}
