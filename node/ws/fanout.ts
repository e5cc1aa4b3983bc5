/**
 * The source side of the cross-node fan-out: the namespace leader keeps, per subscriber node and
 * namespace, the actors it wants and the cursor it acknowledged for each, and pushes every
 * broadcast after that cursor from the `EventLog` its applied entries fill.
 *
 * No per-subscriber queue exists: a push is read from the shared buffer at send time, so a slow
 * or silent subscriber costs a cursor, not memory. One push is in flight per (subscriber,
 * namespace); broadcasts that commit meanwhile go into the next one (batching under load, one
 * round trip of latency at most). The subscriber answers with its cursor after each push, which
 * also repairs anything lost on the way: the next push starts from that cursor and the subscriber
 * drops what it already has. So a push never needs to arrive; only the cursors must be right.
 */
import type { Logger } from 'pino'
import { NodeError, NotLeaderError } from '../errors.js'
import { comparePos, type EventLog, ORIGIN, type Pos } from './events.js'
import type {
  PushAnswer,
  PushFeed,
  PushRequest,
  ReplayAnswer,
  ReplayRequest,
  SubAnswer,
  SubRequest,
  UnsubRequest,
  WireEvent,
} from './protocol.js'

export interface FanoutOptions {
  /** Interests (subscriber node × actor) held at most; beyond it `ws.sub` is refused as busy. */
  interestsMax: number
  /** Broadcasts in one push or replay answer at most. */
  pushEventsMax: number
  /** Bytes of broadcast data in one push or replay answer, about (at least one broadcast). */
  pushBytesMax: number
  /** Pause before pushing again after a failed push or a `'wait'` answer, in milliseconds. */
  retryMs: number
  /** Consecutive failed pushes after which a subscriber is forgotten (it re-registers if alive). */
  pushFailuresMax: number
}

export const FANOUT_DEFAULTS: FanoutOptions = {
  interestsMax: 100_000,
  pushEventsMax: 512,
  pushBytesMax: 1 << 20,
  retryMs: 100,
  pushFailuresMax: 50,
}

export interface FanoutDeps {
  self: string
  events: EventLog
  /** Sends a push to a subscriber node (this node included) and resolves with its answer. */
  push(peer: string, req: PushRequest): Promise<PushAnswer>
  /** The leader of `ns` as this node knows it ('' if none), and whether it is this node. */
  leader(ns: string): string
  log: Logger
}

/** One subscriber node's interest in one namespace. */
interface Subscriber {
  peer: string
  ns: string
  /** Actor → the cursor the subscriber acknowledged. */
  acked: Map<string, Pos>
  /** Actors that may have broadcasts after their acknowledged cursor. */
  dirty: Set<string>
  inflight: boolean
  failures: number
  retry?: NodeJS.Timeout
}

/** The interest registry and pusher of a node (see the file comment). */
export class FanoutServer {
  private readonly subscribers = new Map<string, Subscriber>()
  /** `ns \0 actor` → subscribers interested in it. */
  private readonly byActor = new Map<string, Set<Subscriber>>()
  private readonly ready = new Set<Subscriber>()
  private interests = 0
  private scheduled = false
  private closed = false
  readonly options: FanoutOptions
  readonly counters = { pushesSent: 0, pushedEvents: 0, pushFailures: 0 }

  constructor(
    private readonly deps: FanoutDeps,
    options: Partial<FanoutOptions> = {},
  ) {
    this.options = { ...FANOUT_DEFAULTS, ...options }
  }

  /**
   * `ws.sub`: registers (or re-registers) `peer`'s interest in actors of a namespace led here.
   * A feed with a cursor resumes after it (pushes replay the buffer from there) or is told how
   * far back the buffer reaches; a new feed starts at this node's tail.
   */
  subscribe(peer: string, req: SubRequest): SubAnswer {
    const lead = this.deps.leader(req.ns)
    if (lead !== this.deps.self || !this.deps.events.has(req.ns)) throw new NotLeaderError(req.ns, lead)
    const sub = this.subscriber(peer, req.ns)
    const added = req.feeds.filter((f) => !sub.acked.has(f.actor)).length
    if (this.interests + added > this.options.interestsMax) {
      throw new NodeError(
        'ACTORMESH_WS_INTERESTS_MAX',
        `Cannot subscribe ${added} more actors of '${req.ns}': interestsMax '${this.options.interestsMax}' reached`,
        true,
      )
    }
    const tail = this.deps.events.tail(req.ns) ?? ORIGIN
    const feeds: SubAnswer['feeds'] = []
    for (const { actor, after } of req.feeds) {
      const cursor = after ?? tail
      const probe = this.deps.events.replay(req.ns, actor, cursor, 1, 1)
      if (probe.gone) {
        feeds.push({ actor, gone: probe.since })
        continue
      }
      if (!sub.acked.has(actor)) {
        this.interests++
        this.interested(req.ns, actor).add(sub)
      }
      sub.acked.set(actor, cursor)
      sub.dirty.add(actor)
      feeds.push({ actor, cursor })
    }
    this.markReady(sub)
    return { feeds }
  }

  /** `ws.unsub`: `peer` has no clients of these actors any more. */
  unsubscribe(peer: string, req: UnsubRequest): void {
    const sub = this.subscribers.get(keyOf(peer, req.ns))
    if (!sub) return
    for (const actor of req.actors) this.forget(sub, actor)
  }

  /** `ws.replay`: broadcasts of an actor after a cursor, from this replica's buffer. */
  replay(req: ReplayRequest): ReplayAnswer {
    if (!this.deps.events.has(req.ns)) throw new NotLeaderError(req.ns, this.deps.leader(req.ns))
    const r = this.deps.events.replay(
      req.ns,
      req.actor,
      req.after,
      this.options.pushEventsMax,
      this.options.pushBytesMax,
    )
    if (r.gone) return { gone: r.since }
    return { events: r.events.map((e): WireEvent => [e.index, e.n, e.data]), more: r.more }
  }

  /** New broadcasts of these actors are in the buffer: push them to whoever wants them. */
  appended(ns: string, actors: Iterable<string>): void {
    for (const actor of actors) {
      const subs = this.byActor.get(keyOf(ns, actor))
      if (!subs) continue
      for (const sub of subs) {
        sub.dirty.add(actor)
        this.markReady(sub)
      }
    }
  }

  /** A node is gone (membership holds it dead): forget its interests. */
  peerGone(peer: string): void {
    for (const sub of [...this.subscribers.values()]) {
      if (sub.peer !== peer) continue
      for (const actor of [...sub.acked.keys()]) this.forget(sub, actor)
    }
  }

  /** Interests held, by how many subscriber nodes (for status and tests). */
  stats(): { interests: number; subscribers: number } {
    return { interests: this.interests, subscribers: this.subscribers.size }
  }

  close(): void {
    this.closed = true
    for (const sub of this.subscribers.values()) clearTimeout(sub.retry)
    this.subscribers.clear()
    this.byActor.clear()
    this.ready.clear()
    this.interests = 0
  }

  private subscriber(peer: string, ns: string): Subscriber {
    const key = keyOf(peer, ns)
    let sub = this.subscribers.get(key)
    if (!sub) {
      sub = { peer, ns, acked: new Map(), dirty: new Set(), inflight: false, failures: 0 }
      this.subscribers.set(key, sub)
    }
    return sub
  }

  private interested(ns: string, actor: string): Set<Subscriber> {
    const key = keyOf(ns, actor)
    let set = this.byActor.get(key)
    if (!set) {
      set = new Set()
      this.byActor.set(key, set)
    }
    return set
  }

  private forget(sub: Subscriber, actor: string): void {
    if (!sub.acked.delete(actor)) return
    this.interests--
    sub.dirty.delete(actor)
    const key = keyOf(sub.ns, actor)
    const set = this.byActor.get(key)
    set?.delete(sub)
    if (set?.size === 0) this.byActor.delete(key)
    if (sub.acked.size === 0) {
      clearTimeout(sub.retry)
      this.ready.delete(sub)
      this.subscribers.delete(keyOf(sub.peer, sub.ns))
    }
  }

  private markReady(sub: Subscriber): void {
    if (sub.dirty.size === 0 || sub.retry || this.closed) return
    this.ready.add(sub)
    if (this.scheduled) return
    this.scheduled = true
    // One flush per turn: the broadcasts of every entry applied in it share pushes.
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush(): void {
    for (const sub of [...this.ready]) {
      if (sub.inflight) continue
      this.ready.delete(sub)
      const feeds = this.build(sub)
      if (feeds.length > 0) this.send(sub, feeds)
    }
  }

  /** The next push of `sub`: broadcasts after each dirty actor's cursor, within the push bounds. */
  private build(sub: Subscriber): PushFeed[] {
    const feeds: PushFeed[] = []
    let events = 0
    let bytes = 0
    for (const actor of [...sub.dirty]) {
      if (events >= this.options.pushEventsMax || bytes >= this.options.pushBytesMax) break
      const from = sub.acked.get(actor)!
      const r = this.deps.events.replay(
        sub.ns,
        actor,
        from,
        this.options.pushEventsMax - events,
        Math.max(1, this.options.pushBytesMax - bytes),
      )
      if (r.gone || !r.more) sub.dirty.delete(actor)
      if (r.gone) feeds.push({ actor, gone: r.since })
      else if (r.events.length > 0) {
        feeds.push({ actor, from, events: r.events.map((e): WireEvent => [e.index, e.n, e.data]) })
        events += r.events.length
        for (const e of r.events) bytes += e.data.byteLength
      }
    }
    return feeds
  }

  private send(sub: Subscriber, feeds: PushFeed[]): void {
    sub.inflight = true
    this.counters.pushesSent++
    for (const f of feeds) if ('events' in f) this.counters.pushedEvents += f.events.length
    this.deps.push(sub.peer, { ns: sub.ns, feeds }).then(
      (answer) => {
        sub.inflight = false
        sub.failures = 0
        let wait = false
        for (const [actor, cursor] of answer.cursors) {
          if (!sub.acked.has(actor)) continue
          if (cursor === null) this.forget(sub, actor)
          else if (cursor === 'wait') {
            sub.dirty.add(actor)
            wait = true
          } else {
            sub.acked.set(actor, cursor)
            const sent = feeds.find((f) => f.actor === actor)
            // Refused or only partly taken (the subscriber is behind what was sent): send again.
            if (sent && 'events' in sent && comparePos(cursor, lastPos(sent.events)) < 0) sub.dirty.add(actor)
          }
        }
        if (wait) this.retryLater(sub)
        else this.markReady(sub)
      },
      (e: unknown) => {
        sub.inflight = false
        this.counters.pushFailures++
        for (const f of feeds) if (sub.acked.has(f.actor)) sub.dirty.add(f.actor)
        if (++sub.failures >= this.options.pushFailuresMax) {
          this.deps.log.info(
            { peer: sub.peer, ns: sub.ns, err: String(e) },
            'subscriber unreachable; forgot it',
          )
          for (const actor of [...sub.acked.keys()]) this.forget(sub, actor)
          return
        }
        this.retryLater(sub)
      },
    )
  }

  private retryLater(sub: Subscriber): void {
    if (sub.retry || this.closed) return
    sub.retry = setTimeout(() => {
      sub.retry = undefined
      if (this.subscribers.get(keyOf(sub.peer, sub.ns)) === sub) this.markReady(sub)
    }, this.options.retryMs)
    sub.retry.unref()
  }
}

function keyOf(a: string, b: string): string {
  return `${a}\u0000${b}`
}

function lastPos(events: WireEvent[]): Pos {
  const e = events[events.length - 1]!
  return { index: e[0], n: e[1] }
}
