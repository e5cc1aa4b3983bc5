/**
 * Routing of calls: any node accepts a call and sends it to the namespace's leader (its own group
 * state, else the leaderships members gossip), following one "not leader, try X" answer; a stale
 * read goes to the nearest replica by measured round-trip time.
 */
import type { Logger } from 'pino'
import type { Capability } from '../actors/index.js'
import type { MultiRaft } from '../consensus/index.js'
import { type ActorHost, type CallReply, type CallRequest, checkCallRequest } from './actor-host.js'
import { type CatalogNamespace, SYSTEM_GROUP } from './catalog.js'
import { NamespaceNotFoundError, NoLeaderError } from './errors.js'
import type { Membership } from './membership.js'
import type { Rpc } from './rpc.js'
import type { SystemService } from './system.js'
import { inCallSpan } from './tracing.js'

/** How long a client should wait before retrying when no leader is known. */
export const NO_LEADER_RETRY_MS = 250
/** How long a lookup of a namespace this node does not know waits to bring its catalog up to date. */
const CATALOG_SYNC_TIMEOUT_MS = 3_000

export interface RouterOptions {
  /** Milliseconds a forwarded call may take before it fails with an unknown outcome. */
  forwardTimeoutMs?: number
}

export interface DeployRequest {
  namespace: string
  bytes: Uint8Array
  capabilities?: Capability[]
  /** Ed25519 signature of the module (actors/signing.ts); required when the leader has deploy keys. */
  signature?: Uint8Array
}

/** How a call that entered this node ended (for metrics). */
export type CallOutcome = { fuelUsed?: number } | { code: string }

/** A deploy request's options for `ActorHost.deploy`. */
function deployOptions(d: DeployRequest): { capabilities?: Capability[]; signature?: Uint8Array } {
  return {
    ...(d.capabilities ? { capabilities: d.capabilities } : {}),
    ...(d.signature ? { signature: d.signature } : {}),
  }
}

export class CallRouter {
  private readonly forwardTimeoutMs: number
  private readonly callListeners: Array<(req: CallRequest, ms: number, outcome: CallOutcome) => void> = []

  constructor(
    private readonly self: string,
    private readonly actors: ActorHost,
    private readonly driver: MultiRaft,
    private readonly system: SystemService,
    private readonly membership: Membership,
    private readonly rpc: Rpc,
    /** The nearest of `peers` by measured round-trip time (this node when it is one of them). */
    private readonly nearest: (peers: string[]) => string | undefined,
    private readonly log: Logger,
    options: RouterOptions = {},
  ) {
    this.forwardTimeoutMs = options.forwardTimeoutMs ?? 10_000
    rpc.handle('actor.call', async (_from, payload) => this.execute(payload as CallRequest))
    rpc.handle('actor.deploy', async (_from, payload) => {
      const d = payload as DeployRequest
      return this.actors.deploy(d.namespace, d.bytes, deployOptions(d))
    })
  }

  /** Calls `listener` when each call that entered here ends, with its latency and outcome. */
  onCallDone(listener: (req: CallRequest, ms: number, outcome: CallOutcome) => void): void {
    this.callListeners.push(listener)
  }

  /** Runs a call here, in a span that continues the trace of the node it entered. */
  private execute(req: CallRequest): Promise<CallReply> {
    return inCallSpan('actormesh.execute', 'internal', req, () => this.actors.execute(req))
  }

  /** Runs a call wherever it must run and returns its reply (in a span; see node/tracing.ts). */
  call(req: CallRequest): Promise<CallReply> {
    return inCallSpan('actormesh.call', 'server', req, (traceparent) =>
      this.observed(traceparent === undefined ? req : { ...req, traceparent }),
    )
  }

  private async observed(req: CallRequest): Promise<CallReply> {
    if (this.callListeners.length === 0) return this.route(req)
    const started = performance.now()
    let outcome: CallOutcome = {}
    try {
      const reply = await this.route(req)
      outcome = { fuelUsed: reply.fuelUsed }
      return reply
    } catch (e) {
      const code = (e as { code?: unknown }).code
      outcome = { code: typeof code === 'string' ? code : 'ACTORMESH_INTERNAL' }
      throw e
    } finally {
      const ms = performance.now() - started
      for (const l of this.callListeners) l(req, ms, outcome)
    }
  }

  private async route(req: CallRequest): Promise<CallReply> {
    checkCallRequest(req)
    const ns = await this.namespace(req.namespace)
    if (req.consistency === 'stale') {
      const target = this.nearest([...ns.voters, ...ns.learners])
      if (target) {
        try {
          return await this.run(target, req)
        } catch (e) {
          // The nearest replica may be down or not host it yet: the leader serves it instead.
          this.log.debug(
            { ns: req.namespace, target, err: String(e) },
            'stale read failed on nearest replica',
          )
        }
      }
    }
    return this.toLeader(req.namespace, ns.voters, (target) => this.run(target, req))
  }

  /** Deploys a module through the namespace's leader. */
  async deploy(req: DeployRequest): Promise<{ namespace: string; version: number; hash: string }> {
    const ns = await this.namespace(req.namespace)
    const deployed = await this.toLeader(req.namespace, ns.voters, (target) =>
      target === this.self
        ? this.actors.deploy(req.namespace, req.bytes, deployOptions(req))
        : (this.rpc.request(target, 'actor.deploy', req, { timeoutMs: this.forwardTimeoutMs }) as Promise<{
            namespace: string
            version: number
            hash: string
          }>),
    )
    // The namespace's log is the truth; the catalog's record is for listings, so best effort.
    await this.system.recordModule(req.namespace, deployed.hash).catch((e: unknown) => {
      this.log.warn({ ns: req.namespace, err: String(e) }, 'deployed, but the catalog did not record it')
    })
    return deployed
  }

  /** The leader of `namespace` as this node knows it, or '' . */
  leaderOf(namespace: string): string {
    if (this.system.hosted(namespace)) {
      const lead = this.driver.leader(namespace)
      if (lead) return lead
    }
    for (const m of this.membership.alive()) if (m.leads.includes(namespace)) return m.peer
    return ''
  }

  /** Not worth forwarding to a peer membership holds suspect or dead (wait for a new leader). */
  private reachable(peer: string): boolean {
    if (peer === this.self) return true
    const state = this.membership.get(peer)?.state
    return state === undefined || state === 'alive'
  }

  private run(target: string, req: CallRequest): Promise<CallReply> {
    if (target === this.self) return this.execute(req)
    return this.rpc.request(target, 'actor.call', req, {
      timeoutMs: this.forwardTimeoutMs,
    }) as Promise<CallReply>
  }

  /**
   * The catalog's record of `name`. This node's copy of the catalog may be behind (a namespace
   * created a moment ago through another node): before answering "not found", a ReadIndex on
   * `_system` brings it up to date. When that cannot be confirmed (no `_system` leader reachable),
   * the answer is a retryable "no leader", not a 404 that may be false.
   */
  private async namespace(name: string): Promise<CatalogNamespace> {
    const known = this.system.catalog.namespaces.get(name)
    if (known) return known
    if (!this.driver.groups().includes(SYSTEM_GROUP))
      throw new NoLeaderError(SYSTEM_GROUP, NO_LEADER_RETRY_MS)
    try {
      await this.driver.readIndex(SYSTEM_GROUP, { signal: AbortSignal.timeout(CATALOG_SYNC_TIMEOUT_MS) })
    } catch {
      throw new NoLeaderError(SYSTEM_GROUP, NO_LEADER_RETRY_MS)
    }
    const ns = this.system.catalog.namespaces.get(name)
    if (!ns) throw new NamespaceNotFoundError(name)
    return ns
  }

  /** Runs `op` on the known leader; a "not leader, try X" answer is followed once. */
  private async toLeader<T>(
    namespace: string,
    voters: string[],
    op: (target: string) => Promise<T>,
  ): Promise<T> {
    // With no leader known, a replica answers with the leader it knows (or none).
    const target = this.leaderOf(namespace) || this.nearest(voters)
    if (!target || !this.reachable(target)) throw new NoLeaderError(namespace, NO_LEADER_RETRY_MS)
    try {
      return await op(target)
    } catch (e) {
      const err = e as { code?: string; details?: { leader?: unknown } }
      if (err.code !== 'ACTORMESH_NOT_LEADER') throw e
      const hint = typeof err.details?.leader === 'string' ? err.details.leader : ''
      if (!hint || hint === target || !this.reachable(hint))
        throw new NoLeaderError(namespace, NO_LEADER_RETRY_MS)
      try {
        return await op(hint)
      } catch (again) {
        if ((again as { code?: string }).code === 'ACTORMESH_NOT_LEADER')
          throw new NoLeaderError(namespace, NO_LEADER_RETRY_MS)
        throw again
      }
    }
  }
}
