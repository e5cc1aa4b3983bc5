import { multiaddr } from '@multiformats/multiaddr'
import { pack, unpack } from 'msgpackr'
import type { Logger } from 'pino'
import type { Host } from './p2p/host.js'

/** The gossipsub topic every node publishes its heartbeat on. */
export const MEMBERSHIP_TOPIC = '/actormesh/membership/1'

/** What a node says about itself in every heartbeat. */
export interface MemberInfo {
  peer: string
  addrs: string[]
  /** The node's HTTP gateway, e.g. `http://127.0.0.1:8080`; empty if it has none. */
  gateway: string
  /** Grows on every restart, so news from an older life of the node is ignored. */
  incarnation: number
  /** A load figure (e.g. resident actors + groups led); placement spreads by it. */
  load: number
  /** Groups this node leads (at most `leadsPerHeartbeatMax`). */
  leads: string[]
}

export type MemberState = 'alive' | 'suspect' | 'dead'

export interface Member extends MemberInfo {
  state: MemberState
  /** Local monotonic time (ms) the last heartbeat arrived. */
  lastSeenMs: number
}

export interface MembershipOptions {
  heartbeatMs?: number
  /** Silent this long: suspect. */
  suspectAfterMs?: number
  /** Silent this long: dead. */
  deadAfterMs?: number
  /** Members remembered at most (dead ones are forgotten first). */
  membersMax?: number
  leadsPerHeartbeatMax?: number
}

/**
 * Default timings. Every heartbeat is signed, relayed and verified by every node: at 200 ms they
 * cost an idle 3-node cluster ~5% of a core each; beats every 500 ms miss two before suspicion.
 * Link loss is seen at once by PeerWatch; this only has to find silent peers, within
 * membership.dead_ms <= 3,000 (failures are checked every 100 ms, so a silent peer is dead 2.4 to
 * 2.5 s after its last heartbeat).
 */
export const MEMBERSHIP_DEFAULTS = { heartbeatMs: 500, suspectAfterMs: 1_200, deadAfterMs: 2_400 } as const

/** Why a member's state changed. */
export interface MemberChange {
  member: Member
  previous: MemberState | 'unknown'
}

/**
 * Gossiped membership with a timeout failure detector. Every node publishes a heartbeat on one
 * gossipsub topic; a member silent for `suspectAfterMs` is suspect and for `deadAfterMs` dead.
 * Publishing without peers (a partition, a lone node) is normal. New members' addresses are
 * dialled so that the mesh becomes fully connected from a single seed.
 */
export class Membership {
  /** Heartbeats published and failed to publish (metrics, tests). */
  readonly counters = { published: 0, publishFailures: 0 }
  private readonly members = new Map<string, Member>()
  private readonly listeners = new Set<(change: MemberChange) => void>()
  private timer: NodeJS.Timeout | undefined
  private detector: NodeJS.Timeout | undefined
  private soon: NodeJS.Timeout | undefined
  private readonly heartbeatMs: number
  private readonly suspectAfterMs: number
  private readonly deadAfterMs: number
  private readonly membersMax: number
  private readonly leadsPerHeartbeatMax: number
  private readonly self: string
  private beats = 0
  /** The groups led as last published (joined), to tell whether they changed. */
  private leadsSent = ''
  private readonly onMessage = (evt: CustomEvent<{ topic: string; data: Uint8Array }>): void => {
    if (evt.detail.topic === MEMBERSHIP_TOPIC) this.receive(evt.detail.data)
  }
  /**
   * A peer (newly connected) subscribed to the topic: beat at once, so it hears of us now rather
   * than at our next beat — and a joining node, which dials every member it hears of, is heard
   * by each of them as soon as the connection is up.
   */
  private readonly onSubscription = (
    evt: CustomEvent<{ subscriptions: Array<{ topic: string; subscribe: boolean }> }>,
  ): void => {
    if (evt.detail.subscriptions.some((s) => s.topic === MEMBERSHIP_TOPIC && s.subscribe)) {
      this.introduce = true
      this.beatSoon()
    }
  }
  /**
   * The next beat also lists the members alive with their addresses: a peer that just connected
   * dials them all at once. Gossip is off (node/p2p/host.ts), and a node restarted on its data
   * (same peer id, new port) is kept out of its seed's mesh for a while by gossipsub's prune
   * backoff: without this it heard of no other member, and none learned its new address.
   */
  private introduce = false

  constructor(
    private readonly host: Host,
    private readonly describe: () => Omit<MemberInfo, 'peer' | 'addrs' | 'incarnation'>,
    private readonly incarnation: number,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
    options: MembershipOptions = {},
  ) {
    this.self = host.peerId.toString()
    this.heartbeatMs = options.heartbeatMs ?? MEMBERSHIP_DEFAULTS.heartbeatMs
    this.suspectAfterMs = options.suspectAfterMs ?? MEMBERSHIP_DEFAULTS.suspectAfterMs
    this.deadAfterMs = options.deadAfterMs ?? MEMBERSHIP_DEFAULTS.deadAfterMs
    this.membersMax = options.membersMax ?? 10_000
    this.leadsPerHeartbeatMax = options.leadsPerHeartbeatMax ?? 4_096
    if (!(this.heartbeatMs < this.suspectAfterMs && this.suspectAfterMs < this.deadAfterMs)) {
      throw new RangeError('Membership timings must satisfy heartbeatMs < suspectAfterMs < deadAfterMs')
    }
  }

  start(): void {
    this.host.services.pubsub.subscribe(MEMBERSHIP_TOPIC)
    this.host.services.pubsub.addEventListener('message', this.onMessage as never)
    this.host.services.pubsub.addEventListener('subscription-change', this.onSubscription as never)
    this.timer = setInterval(() => this.beat(), this.heartbeatMs)
    this.timer.unref()
    this.detector = setInterval(() => this.detectFailures(), Math.min(100, this.heartbeatMs))
    this.detector.unref()
    this.beat()
  }

  /** Stops publishing and listening; safe to call twice and after the host stopped. */
  stop(): void {
    if (this.timer === undefined) return
    clearInterval(this.timer)
    clearInterval(this.detector)
    clearTimeout(this.soon)
    this.timer = undefined
    this.host.services.pubsub.removeEventListener('message', this.onMessage as never)
    this.host.services.pubsub.removeEventListener('subscription-change', this.onSubscription as never)
    if (this.host.status === 'started') this.host.services.pubsub.unsubscribe(MEMBERSHIP_TOPIC)
  }

  /** Calls `listener` on every state change (joined, suspect, dead, alive again). */
  onChange(listener: (change: MemberChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Every known member except this node. */
  list(): Member[] {
    return [...this.members.values()]
  }

  get(peer: string): Member | undefined {
    return this.members.get(peer)
  }

  alive(): Member[] {
    return this.list().filter((m) => m.state === 'alive')
  }

  private beatSoon(): void {
    if (this.soon || this.timer === undefined) return
    this.soon = setTimeout(() => {
      this.soon = undefined
      this.beat()
    }, 20)
    this.soon.unref()
  }

  /**
   * Publishes a heartbeat. The groups led (hundreds of names on a node of a large cluster) go only
   * in a beat after they changed and in every `LEADS_EVERY_BEATS`th beat; the other beats leave
   * them out and receivers keep the last list they got.
   */
  private beat(): void {
    const { leads: all, ...rest } = this.describe()
    const leads = all.slice(0, this.leadsPerHeartbeatMax)
    const key = leads.join('\0')
    const withLeads = key !== this.leadsSent || this.beats % LEADS_EVERY_BEATS === 0
    this.beats++
    this.leadsSent = key
    const known = this.introduce
      ? this.alive()
          .slice(0, INTRODUCED_MAX)
          .map((m) => ({ peer: m.peer, addrs: m.addrs }))
      : []
    this.introduce = false
    const info: HeartbeatInfo = {
      ...rest,
      peer: this.self,
      addrs: this.host.getMultiaddrs().map((a) => a.toString()),
      incarnation: this.incarnation,
      ...(withLeads ? { leads } : {}),
      ...(known.length > 0 ? { known } : {}),
    }
    this.host.services.pubsub.publish(MEMBERSHIP_TOPIC, pack(info)).then(
      () => {
        this.counters.published++
      },
      (e: unknown) => {
        this.counters.publishFailures++
        this.log.debug({ err: String(e) }, 'membership publish failed')
      },
    )
  }

  private detectFailures(): void {
    const now = this.now()
    for (const m of this.members.values()) {
      const silent = now - m.lastSeenMs
      const next: MemberState =
        silent >= this.deadAfterMs ? 'dead' : silent >= this.suspectAfterMs ? 'suspect' : 'alive'
      if (next !== m.state && next !== 'alive') this.transition(m, next)
    }
  }

  private receive(data: Uint8Array): void {
    let info: HeartbeatInfo
    try {
      info = unpack(data) as HeartbeatInfo
    } catch {
      return
    }
    if (!isHeartbeat(info) || info.peer === this.self) return
    // Members it introduces are dialled, not taken as alive: only their own beats do that.
    for (const k of info.known ?? []) if (k.peer !== this.self) this.dial(k.peer, k.addrs)
    const known = this.members.get(info.peer)
    if (known && info.incarnation < known.incarnation) return // news from an older life
    if (!known) {
      this.evictIfFull()
      const member: Member = { leads: [], ...info, state: 'alive', lastSeenMs: this.now() }
      this.members.set(info.peer, member)
      this.dial(member.peer, member.addrs)
      this.emit({ member, previous: 'unknown' })
      // Answer a newcomer at once rather than at the next beat, so it learns of us sooner.
      this.beatSoon()
      return
    }
    Object.assign(known, info, { lastSeenMs: this.now() })
    if (known.state !== 'alive') this.transition(known, 'alive')
  }

  private transition(member: Member, state: MemberState): void {
    const previous = member.state
    member.state = state
    this.log.info({ peer: member.peer, from: previous, to: state }, 'member state changed')
    this.emit({ member, previous })
  }

  private emit(change: MemberChange): void {
    for (const l of this.listeners) {
      try {
        l(change)
      } catch (e) {
        this.log.error({ err: String(e) }, 'membership listener failed')
      }
    }
  }

  private evictIfFull(): void {
    if (this.members.size < this.membersMax) return
    const victim = this.list().find((m) => m.state === 'dead') ?? this.list()[0]
    if (victim) this.members.delete(victim.peer)
  }

  /** Connects to a peer heard of through gossip (a new member, or one a member knows), so the mesh fills in. */
  private dial(peer: string, addrs: string[]): void {
    const connected = this.host.getConnections().some((c) => c.remotePeer.toString() === peer)
    if (connected || addrs.length === 0) return
    let targets: ReturnType<typeof multiaddr>[]
    try {
      targets = addrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peer}`))
    } catch {
      return
    }
    void this.host
      .dial(targets)
      .catch((e: unknown) => this.log.debug({ peer, err: String(e) }, 'dial failed'))
  }
}

/** A heartbeat on the wire: `leads` may be left out (unchanged since the last beat that had it). */
type HeartbeatInfo = Omit<MemberInfo, 'leads'> & {
  leads?: string[]
  /** Members introduced to a peer that just connected (see `introduce`). */
  known?: Array<{ peer: string; addrs: string[] }>
}

/** Members one heartbeat introduces at most. */
const INTRODUCED_MAX = 64

/** Heartbeats between which a node repeats its unchanged list of groups led (5 s at 500 ms). */
const LEADS_EVERY_BEATS = 10

function isHeartbeat(v: unknown): v is HeartbeatInfo {
  if (typeof v !== 'object' || v === null) return false
  const m = v as Record<string, unknown>
  return (
    typeof m.peer === 'string' &&
    Array.isArray(m.addrs) &&
    m.addrs.every((a) => typeof a === 'string') &&
    typeof m.gateway === 'string' &&
    typeof m.incarnation === 'number' &&
    typeof m.load === 'number' &&
    (m.leads === undefined || (Array.isArray(m.leads) && m.leads.every((g) => typeof g === 'string'))) &&
    (m.known === undefined ||
      (Array.isArray(m.known) && m.known.length <= INTRODUCED_MAX && m.known.every(isIntroduced)))
  )
}

function isIntroduced(k: unknown): k is { peer: string; addrs: string[] } {
  if (typeof k !== 'object' || k === null) return false
  const { peer, addrs } = k as { peer?: unknown; addrs?: unknown }
  return typeof peer === 'string' && Array.isArray(addrs) && addrs.every((a) => typeof a === 'string')
}
