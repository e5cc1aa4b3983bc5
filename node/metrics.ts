/**
 * The node's Prometheus metrics (`GET /metrics`, prom-client): Raft, actors, gateway, WebSocket
 * fan-out, membership, links, and libp2p's own (registered into the same registry by the host).
 *
 * Most figures are read from the parts' own counters when Prometheus scrapes (`collect`), so the
 * hot paths pay nothing; calls and HTTP requests are observed as they finish. Labels are bounded:
 * no namespace, actor or peer id appears as a label value (a node may host thousands of
 * namespaces), only roles, outcomes, error codes, methods and status codes.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { type MultiRaft, ROLE_NAMES } from '../consensus/index.js'
import type { LogStore } from '../consensus/types.js'
import type { CallRequest } from './actor-host.js'
import type { LinkCounters } from './p2p/links.js'
import type { CallOutcome } from './router.js'

/** What the metrics read from the running node. */
export interface MetricsSources {
  driver: MultiRaft
  logStore: Pick<LogStore, 'groups' | 'open'>
  actors: () => { residentActors: number; residentBytes: number; evictions: number; compiledModules: number }
  ws: () => {
    connections: number
    clients: number
    feeds: number
    bufferedBytes: number
    deliver: { count: number; p50Ms: number; p99Ms: number; maxMs: number }
  }
  members: () => Array<{ state: string }>
  membershipCounters: () => { published: number; publishFailures: number }
  links: () => LinkCounters
  connections: () => number
}

/** Latency buckets in seconds, from 0.5 ms to 10 s. */
const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** A gauge whose value is read at scrape time. */
function gauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read())
    },
  })
}

/**
 * A counter that mirrors a monotonic figure kept elsewhere: at scrape time it grows by what the
 * source grew since the last scrape.
 */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  let seen = 0
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read()
      if (now > seen) this.inc(now - seen)
      seen = Math.max(seen, now)
    },
  })
}

export class NodeMetrics {
  private readonly calls: Counter<'kind' | 'outcome'>
  private readonly callSeconds: Histogram<'kind'>
  private readonly fuel: Histogram
  private readonly traps: Counter<'code'>
  private readonly http: Counter<'method' | 'status'>

  /** `registry` may already hold libp2p's metrics (the host is created before the rest). */
  constructor(
    sources: MetricsSources,
    readonly registry: Registry = new Registry(),
  ) {
    const r = this.registry
    const { driver } = sources

    // ---- Raft
    new Gauge({
      name: 'actormesh_raft_groups',
      help: 'Raft groups hosted here, by this node’s role in them',
      labelNames: ['role'],
      registers: [r],
      collect() {
        const counts = new Map(ROLE_NAMES.map((n) => [n, 0]))
        for (const g of driver.groups()) {
          const role = ROLE_NAMES[driver.status(g).role] ?? 'unknown'
          counts.set(role, (counts.get(role) ?? 0) + 1)
        }
        for (const [role, n] of counts) this.set({ role }, n)
      },
    })
    gauge(r, 'actormesh_raft_system_term', 'Current term of the _system group on this node', () =>
      driver.groups().includes('_system') ? driver.status('_system').term : 0,
    )
    gauge(r, 'actormesh_raft_term_max', 'Highest term of any group hosted here', () =>
      driver.groups().reduce((m, g) => Math.max(m, driver.status(g).term), 0),
    )
    mirroredCounter(
      r,
      'actormesh_raft_leader_changes_total',
      'Times the known leader of a hosted group changed (including to none)',
      () => driver.stats().leaderChanges,
    )
    mirroredCounter(
      r,
      'actormesh_raft_proposals_total',
      'Entries proposed here',
      () => driver.stats().proposals,
    )
    mirroredCounter(
      r,
      'actormesh_raft_proposals_failed_total',
      'Proposals that failed: dropped, outcome unknown, timed out or aborted',
      () => driver.stats().proposalsFailed,
    )
    const commit = new Histogram({
      name: 'actormesh_raft_commit_seconds',
      help: 'Time from proposing an entry to its being committed and applied here',
      buckets: SECONDS_BUCKETS,
      registers: [r],
    })
    driver.onProposalApplied((ms) => commit.observe(ms / 1_000))
    gauge(r, 'actormesh_raft_log_entries', 'Uncompacted Raft log entries over all groups hosted here', () => {
      let n = 0
      for (const g of sources.logStore.groups()) {
        const s = sources.logStore.open(g)
        n += Math.max(0, s.lastIndex() - s.firstIndex() + 1)
      }
      return n
    })
    mirroredCounter(
      r,
      'actormesh_raft_turns_total',
      'Driver turns (one log write, one frame per peer)',
      () => driver.stats().turns,
    )
    mirroredCounter(
      r,
      'actormesh_raft_messages_sent_total',
      'Raft messages sent',
      () => driver.stats().messagesSent,
    )
    mirroredCounter(
      r,
      'actormesh_raft_messages_dropped_total',
      'Raft messages dropped: for a group not hosted here, or addressed to another node',
      () => driver.stats().messagesDropped,
    )

    // ---- Actors
    this.calls = new Counter({
      name: 'actormesh_actor_calls_total',
      help: 'Actor calls that entered this node, by kind (write, read, stale) and outcome (ok or error code)',
      labelNames: ['kind', 'outcome'],
      registers: [r],
    })
    this.callSeconds = new Histogram({
      name: 'actormesh_actor_call_seconds',
      help: 'Latency of actor calls that entered this node, forwarding and the output gate included',
      labelNames: ['kind'],
      buckets: SECONDS_BUCKETS,
      registers: [r],
    })
    this.fuel = new Histogram({
      name: 'actormesh_actor_fuel_used',
      help: 'Fuel (WebAssembly instructions, metered) used by calls run on this node',
      buckets: [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9],
      registers: [r],
    })
    this.traps = new Counter({
      name: 'actormesh_actor_traps_total',
      help: 'Calls whose actor trapped or hit a limit, by error code',
      labelNames: ['code'],
      registers: [r],
    })
    gauge(
      r,
      'actormesh_actor_resident_instances',
      'Actor instances in memory',
      () => sources.actors().residentActors,
    )
    gauge(
      r,
      'actormesh_actor_resident_bytes',
      'Bytes of actor state in memory',
      () => sources.actors().residentBytes,
    )
    gauge(
      r,
      'actormesh_actor_compiled_modules',
      'Compiled WebAssembly modules cached',
      () => sources.actors().compiledModules,
    )
    mirroredCounter(
      r,
      'actormesh_actor_evictions_total',
      'Actor instances evicted from memory',
      () => sources.actors().evictions,
    )

    // ---- Gateway and WebSocket fan-out
    this.http = new Counter({
      name: 'actormesh_http_requests_total',
      help: 'HTTP requests answered by the gateway, by method and status code',
      labelNames: ['method', 'status'],
      registers: [r],
    })
    gauge(r, 'actormesh_ws_connections', 'WebSocket connections open', () => sources.ws().connections)
    gauge(r, 'actormesh_ws_clients', 'WebSocket clients subscribed to an actor', () => sources.ws().clients)
    gauge(
      r,
      'actormesh_ws_feeds',
      'Actors this node receives broadcasts of for its clients',
      () => sources.ws().feeds,
    )
    gauge(
      r,
      'actormesh_ws_buffered_bytes',
      'Bytes of broadcasts kept for resuming clients',
      () => sources.ws().bufferedBytes,
    )
    new Gauge({
      name: 'actormesh_ws_fanout_seconds',
      help: 'Time a pushed broadcast took to reach every local client, over the last 1,024 pushes',
      labelNames: ['quantile'],
      registers: [r],
      collect() {
        const d = sources.ws().deliver
        this.set({ quantile: '0.5' }, d.p50Ms / 1_000)
        this.set({ quantile: '0.99' }, d.p99Ms / 1_000)
        this.set({ quantile: '1' }, d.maxMs / 1_000)
      },
    })

    // ---- Membership and links
    new Gauge({
      name: 'actormesh_membership_members',
      help: 'Other nodes known to membership, by state',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0 }
        for (const m of sources.members()) counts[m.state] = (counts[m.state] ?? 0) + 1
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n)
      },
    })
    mirroredCounter(
      r,
      'actormesh_membership_heartbeats_total',
      'Heartbeats published',
      () => sources.membershipCounters().published,
    )
    mirroredCounter(
      r,
      'actormesh_membership_publish_failures_total',
      'Heartbeats that failed to publish',
      () => sources.membershipCounters().publishFailures,
    )
    mirroredCounter(
      r,
      'actormesh_link_frames_sent_total',
      'Frames sent on peer links',
      () => sources.links().framesSent,
    )
    mirroredCounter(
      r,
      'actormesh_link_frames_received_total',
      'Frames received on peer links',
      () => sources.links().framesReceived,
    )
    mirroredCounter(
      r,
      'actormesh_link_frames_dropped_total',
      'Frames dropped: queue full or stream failed',
      () => sources.links().framesDropped,
    )
    mirroredCounter(
      r,
      'actormesh_link_silent_streams_closed_total',
      'Link streams given up because nothing arrived on them (keepalives included) for silentTimeoutMs',
      () => sources.links().silentStreamsClosed,
    )
    mirroredCounter(
      r,
      'actormesh_link_stalls_forgiven_total',
      'Stream checks that found this process had stalled (paused, starved, a long GC), so the stall did not count as silence',
      () => sources.links().stallsForgiven,
    )
    mirroredCounter(
      r,
      'actormesh_link_abuse_disconnects_total',
      'Peers disconnected for bad frames',
      () => sources.links().abuseDisconnects,
    )
    gauge(r, 'actormesh_libp2p_connections', 'Open libp2p connections', sources.connections)
  }

  /** Records one call that entered this node: its kind, outcome, latency and (when run here) fuel. */
  observeCall(call: CallRequest, ms: number, outcome: CallOutcome): void {
    const kind = call.consistency === 'stale' ? 'stale' : call.readonly ? 'read' : 'write'
    const code = 'code' in outcome ? outcome.code : 'ok'
    this.calls.inc({ kind, outcome: code })
    this.callSeconds.observe({ kind }, ms / 1_000)
    if ('fuelUsed' in outcome && outcome.fuelUsed !== undefined) this.fuel.observe(outcome.fuelUsed)
    if (TRAP_CODES.has(code)) this.traps.inc({ code })
  }

  /** Counts every answered request of `server` by method and status. */
  instrument(server: Server): void {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      res.once('finish', () => {
        const method = KNOWN_METHODS.has(req.method ?? '') ? req.method! : 'OTHER'
        this.http.inc({ method, status: String(res.statusCode) })
      })
    })
  }

  /** Serves `GET /metrics` in Prometheus' text format; true when it answered. */
  async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (url.pathname !== '/metrics' || req.method !== 'GET') return false
    const body = await this.registry.metrics()
    res.writeHead(200, { 'content-type': this.registry.contentType })
    res.end(body)
    return true
  }
}

const KNOWN_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'])

/** Error codes that mean the actor's code failed or hit a limit (docs/errors.md). */
const TRAP_CODES = new Set([
  'ACTORMESH_ACTOR_TRAP',
  'ACTORMESH_FUEL_EXHAUSTED',
  'ACTORMESH_STACK_OVERFLOW',
  'ACTORMESH_CALL_DEADLINE',
  'ACTORMESH_MEMORY_LIMIT',
  'ACTORMESH_ACTOR_FAILED',
])
