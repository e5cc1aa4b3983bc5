/**
 * The subscriber side of the fan-out: one *feed* per actor that has WebSocket clients on this
 * node. A feed is registered once with the namespace's leader (all feeds of a namespace share
 * that source and register in one request), receives each committed broadcast once, and hands
 * it to every local client of the actor.
 *
 * Order and completeness rest on cursors. A feed's cursor is the position of the last broadcast
 * it delivered; a push carries every broadcast after the source's idea of that cursor (`from`),
 * so the feed takes the ones after its own cursor, drops the rest, and answers with its cursor.
 * When the source changes (the leader moved or died, or a refresh finds it forgot the
 * subscription), the feed re-registers from its cursor and the new leader replays from its own
 * buffer, which every replica fills from its applied entries. Each client has its own cursor too:
 * one that joins behind the feed (it resumes with `?after=`) catches up with `ws.replay` while
 * the feed's new broadcasts wait in its backlog, then goes live. Nothing is delivered to a client
 * unless it follows the client's cursor, so no client sees a gap or a duplicate.
 */
import type { Logger } from 'pino'
import { comparePos, type Pos } from './events.js'
import { type FeedClient, FeedEvent } from './feed-client.js'
import type {
  PushAnswer,
  PushCursor,
  PushRequest,
  ReplayAnswer,
  ReplayRequest,
  SubAnswer,
  SubRequest,
  UnsubRequest,
} from './protocol.js'
import { DurationSamples } from './samples.js'

export { type EndReason, type FeedClient, FeedEvent } from './feed-client.js'

export interface FeedHubOptions {
  /** How often sources are checked (leader moved, source dead), in milliseconds. */
  checkMs: number
  /** Feeds are registered again this often, which heals a source that forgot them. */
  refreshMs: number
  /** First pause before retrying a failed registration or catch-up; doubles up to 20×. */
  retryMs: number
  /** Bytes a catching-up client may hold back before it is closed as slow. */
  backlogBytesMax: number
  /** Feeds (actors with clients here) at most. */
  feedsMax: number
}

export const FEED_HUB_DEFAULTS: FeedHubOptions = {
  checkMs: 100,
  refreshMs: 3_000,
  retryMs: 100,
  backlogBytesMax: 4 << 20,
  feedsMax: 20_000,
}

export interface FeedHubDeps {
  self: string
  sub(peer: string, req: SubRequest): Promise<SubAnswer>
  unsub(peer: string, req: UnsubRequest): Promise<void>
  replay(peer: string, req: ReplayRequest): Promise<ReplayAnswer>
  /** The leader of `ns` as this node knows it, or ''. */
  leaderOf(ns: string): string
  /** The namespace's voters (fallback sources that answer with a leader hint); undefined once it is deleted. */
  voters(ns: string): string[] | undefined
  /** Membership holds the peer alive (this node always is). */
  alive(peer: string): boolean
  log: Logger
}

interface ClientState {
  client: FeedClient
  cursor: Pos | undefined
  /** `ended`: told why it cannot be served; it gets nothing more and leaves when its socket closes. */
  phase: 'waiting' | 'catching-up' | 'live' | 'ended'
  /** Catching up: the feed's cursor when the client joined, and the feed's broadcasts since. */
  joinAt?: Pos
  /** Which catch-up is current (a client that waited again and rejoined starts a new one). */
  catchUps: number
  /** `ready` was sent (once per client, even if its feed had to register again). */
  announced: boolean
  backlog: FeedEvent[]
  backlogBytes: number
}

interface Feed {
  actor: string
  /** Undefined until the source answered the registration. */
  cursor: Pos | undefined
  /** The cursor to register a new feed from (its first client's `after`). */
  startAfter: Pos | undefined
  clients: Map<FeedClient, ClientState>
}

interface NamespaceFeeds {
  ns: string
  source: string
  /** A leader hint from the last refusal. */
  hint: string
  feeds: Map<string, Feed>
  /** Feeds not registered with the current source yet. */
  pending: Set<string>
  registering: boolean
  lastRegisteredMs: number
  failures: number
  retryAtMs: number
  /** Since when this node's view names another leader than the source (0: it does not). */
  movedSinceMs: number
}

/** Feeds of this node's WebSocket clients (see the file comment). */
export class FeedHub {
  private readonly namespaces = new Map<string, NamespaceFeeds>()
  private feedCount = 0
  private timer: NodeJS.Timeout | undefined
  private closed = false
  readonly options: FeedHubOptions
  /** Milliseconds a push took to hand its broadcasts to every local client (the last 1,024 pushes). */
  readonly deliverMs = new DurationSamples(1_024)
  readonly counters = {
    registrations: 0,
    registrationFailures: 0,
    pushesReceived: 0,
    delivered: 0,
    replays: 0,
  }

  constructor(
    private readonly deps: FeedHubDeps,
    options: Partial<FeedHubOptions> = {},
  ) {
    this.options = { ...FEED_HUB_DEFAULTS, ...options }
  }

  start(): void {
    this.timer = setInterval(() => this.check(), this.options.checkMs)
    this.timer.unref()
  }

  stop(): void {
    this.closed = true
    clearInterval(this.timer)
  }

  /** Whether another actor could get a feed (false at `feedsMax`). */
  canAttach(ns: string, actor: string): boolean {
    return this.namespaces.get(ns)?.feeds.has(actor) === true || this.feedCount < this.options.feedsMax
  }

  /** A client connected: it joins its actor's feed (registered with the leader if new). */
  attach(client: FeedClient): void {
    const nsf = this.namespaceFeeds(client.ns)
    let feed = nsf.feeds.get(client.actor)
    if (!feed) {
      feed = { actor: client.actor, cursor: undefined, startAfter: client.after, clients: new Map() }
      nsf.feeds.set(client.actor, feed)
      this.feedCount++
      nsf.pending.add(client.actor)
      this.register(nsf, false)
    }
    const state: ClientState = {
      client,
      cursor: client.after,
      phase: 'waiting',
      backlog: [],
      backlogBytes: 0,
      catchUps: 0,
      announced: false,
    }
    feed.clients.set(client, state)
    if (feed.cursor) this.join(nsf, feed, state)
  }

  /** A client left; the last one of an actor ends the feed and its subscription. */
  detach(client: FeedClient): void {
    const nsf = this.namespaces.get(client.ns)
    const feed = nsf?.feeds.get(client.actor)
    if (!nsf || !feed?.clients.delete(client) || feed.clients.size > 0) return
    nsf.feeds.delete(client.actor)
    nsf.pending.delete(client.actor)
    this.feedCount--
    if (nsf.source) {
      this.deps.unsub(nsf.source, { ns: nsf.ns, actors: [client.actor] }).catch(() => {
        // Best effort: a source that missed it forgets the interest at its next push.
      })
    }
    if (nsf.feeds.size === 0) this.namespaces.delete(nsf.ns)
  }

  /** `ws.push` from a source: deliver what follows each feed's cursor; answer the cursors. */
  receivePush(from: string, req: PushRequest): PushAnswer {
    const started = performance.now()
    let delivered = false
    this.counters.pushesReceived++
    const nsf = this.namespaces.get(req.ns)
    const cursors: Array<[string, PushCursor]> = []
    for (const f of req.feeds) {
      const feed = nsf?.source === from ? nsf.feeds.get(f.actor) : undefined
      if (!nsf || !feed) {
        cursors.push([f.actor, null])
        continue
      }
      if (!feed.cursor) {
        cursors.push([f.actor, 'wait'])
        continue
      }
      if ('gone' in f) {
        // Gone: the feed registers again (already asked, so 'wait' rather than forgetting it).
        if (comparePos(feed.cursor, f.gone) < 0) this.feedGone(nsf, feed, f.gone)
        cursors.push([f.actor, feed.cursor ?? 'wait'])
        continue
      }
      // A push that starts after our cursor would leave a gap: take nothing, answer the cursor.
      if (comparePos(f.from, feed.cursor) <= 0) {
        for (const [index, n, data] of f.events) {
          const pos = { index, n }
          if (comparePos(pos, feed.cursor) <= 0) continue
          feed.cursor = pos
          this.deliver(feed, new FeedEvent(pos, data))
          delivered = true
        }
      }
      cursors.push([f.actor, feed.cursor])
    }
    if (delivered) this.deliverMs.add(performance.now() - started)
    return { cursors }
  }

  /** Feeds, clients and the sources in use (for status and tests). */
  stats(): { feeds: number; clients: number; sources: Record<string, string> } {
    let clients = 0
    const sources: Record<string, string> = {}
    for (const nsf of this.namespaces.values()) {
      sources[nsf.ns] = nsf.source
      for (const feed of nsf.feeds.values()) clients += feed.clients.size
    }
    return { feeds: this.feedCount, clients, sources }
  }

  private namespaceFeeds(ns: string): NamespaceFeeds {
    let nsf = this.namespaces.get(ns)
    if (!nsf) {
      nsf = {
        ns,
        source: '',
        hint: '',
        feeds: new Map(),
        pending: new Set(),
        registering: false,
        lastRegisteredMs: 0,
        failures: 0,
        retryAtMs: 0,
        movedSinceMs: 0,
      }
      this.namespaces.set(ns, nsf)
    }
    return nsf
  }

  private deliver(feed: Feed, event: FeedEvent): void {
    for (const state of feed.clients.values()) {
      if (state.phase === 'live') {
        if (state.cursor && comparePos(event.pos, state.cursor) <= 0) continue
        state.cursor = event.pos
        this.counters.delivered++
        state.client.deliver(event)
      } else if (state.phase === 'catching-up') {
        state.backlog.push(event)
        state.backlogBytes += event.data.byteLength
        if (state.backlogBytes > this.options.backlogBytesMax) {
          this.drop(state)
          state.client.end({ slow: `its catch-up backlog went over ${this.options.backlogBytesMax} bytes` })
        }
      }
    }
  }

  /** A client joins a feed that has a cursor: live at once, or after catching up to it. */
  private join(nsf: NamespaceFeeds, feed: Feed, state: ClientState): void {
    const at = feed.cursor!
    if (!state.cursor || comparePos(state.cursor, at) >= 0) {
      state.cursor ??= at
      state.phase = 'live'
      this.announce(state)
      return
    }
    state.phase = 'catching-up'
    state.joinAt = at
    void this.catchUp(nsf, feed, state, ++state.catchUps)
  }

  /** Replays a client from its cursor to where it joined the feed, then drains its backlog. */
  private async catchUp(nsf: NamespaceFeeds, feed: Feed, state: ClientState, run: number): Promise<void> {
    let pause = this.options.retryMs
    const current = () =>
      state.phase === 'catching-up' && state.catchUps === run && feed.clients.get(state.client) === state
    while (current() && !this.closed) {
      const source = nsf.source || this.chooseSource(nsf)
      let answer: ReplayAnswer
      try {
        if (!source) throw new Error(`no source for '${nsf.ns}'`)
        this.counters.replays++
        answer = await this.deps.replay(source, { ns: nsf.ns, actor: feed.actor, after: state.cursor! })
      } catch (e) {
        this.deps.log.debug(
          { ns: nsf.ns, actor: feed.actor, err: String(e) },
          'catch-up replay failed; retrying',
        )
        await sleep(pause)
        pause = Math.min(pause * 2, this.options.retryMs * 20)
        continue
      }
      if (!current()) return
      if ('gone' in answer) {
        this.drop(state)
        state.client.end({ gone: answer.gone })
        return
      }
      this.announce(state)
      for (const [index, n, data] of answer.events)
        this.catchUpDeliver(state, new FeedEvent({ index, n }, data))
      if (comparePos(state.cursor!, state.joinAt!) >= 0) {
        for (const event of state.backlog) this.catchUpDeliver(state, event)
        state.backlog = []
        state.backlogBytes = 0
        state.phase = 'live'
        return
      }
      // The replica asked is behind where the feed was (a new leader still applying): ask again.
      if (answer.events.length === 0) await sleep(this.options.retryMs)
    }
  }

  private announce(state: ClientState): void {
    if (state.announced) return
    state.announced = true
    state.client.ready(state.cursor!)
  }

  private catchUpDeliver(state: ClientState, event: FeedEvent): void {
    if (comparePos(event.pos, state.cursor!) <= 0) return
    state.cursor = event.pos
    this.counters.delivered++
    state.client.deliver(event)
  }

  private drop(state: ClientState): void {
    state.phase = 'ended'
    state.backlog = []
    state.backlogBytes = 0
  }

  /**
   * The source's buffer no longer reaches back to the feed's cursor: clients behind `since` are
   * told so; the others wait while the feed registers again from the oldest of their cursors.
   */
  private feedGone(nsf: NamespaceFeeds, feed: Feed, since: Pos): void {
    let oldest: Pos | undefined
    for (const state of feed.clients.values()) {
      if (state.phase === 'ended') continue
      if (state.cursor && comparePos(state.cursor, since) < 0) {
        this.drop(state)
        state.client.end({ gone: since })
        continue
      }
      state.phase = 'waiting'
      state.backlog = []
      state.backlogBytes = 0
      if (state.cursor && (!oldest || comparePos(state.cursor, oldest) < 0)) oldest = state.cursor
    }
    feed.cursor = undefined
    feed.startAfter = oldest
    nsf.pending.add(feed.actor)
    this.register(nsf, false)
  }

  /** The catalog no longer has the namespace: its clients are told, its feeds end. */
  private deleted(nsf: NamespaceFeeds): void {
    for (const feed of nsf.feeds.values()) {
      for (const state of feed.clients.values()) {
        if (state.phase === 'ended') continue
        this.drop(state)
        state.client.end({ missing: nsf.ns })
      }
    }
  }

  /** Which node to register with: the last hint, the leader, else a live voter (it answers a hint). */
  private chooseSource(nsf: NamespaceFeeds): string {
    if (nsf.hint && this.deps.alive(nsf.hint)) return nsf.hint
    const lead = this.deps.leaderOf(nsf.ns)
    if (lead && this.deps.alive(lead)) return lead
    const live = (this.deps.voters(nsf.ns) ?? []).filter((p) => this.deps.alive(p))
    return live.length > 0 ? live[nsf.failures % live.length]! : ''
  }

  /**
   * Every `checkMs`: replace a source membership no longer holds alive, follow a leader that
   * moved, register pending feeds, refresh. A source that merely stopped leading still applies
   * and pushes every committed broadcast, so following the leader is only for latency; it waits
   * `MOVE_CONFIRM_CHECKS` checks because a node without a replica learns leaders from gossip,
   * which can lag the hint a refusal carried.
   */
  private check(): void {
    const now = performance.now()
    for (const nsf of [...this.namespaces.values()]) {
      if (this.deps.voters(nsf.ns) === undefined) {
        this.deleted(nsf)
        continue
      }
      if (nsf.registering || now < nsf.retryAtMs) continue
      const lead = this.deps.leaderOf(nsf.ns)
      const moved = lead !== '' && lead !== nsf.source && this.deps.alive(lead)
      nsf.movedSinceMs = moved ? nsf.movedSinceMs || now : 0
      const follow = moved && now - nsf.movedSinceMs >= this.options.checkMs * MOVE_CONFIRM_CHECKS
      if (!nsf.source || !this.deps.alive(nsf.source) || follow) {
        if (follow) nsf.hint = ''
        nsf.movedSinceMs = 0
        this.register(nsf, true)
      } else if (nsf.pending.size > 0 || now - nsf.lastRegisteredMs >= this.options.refreshMs) {
        this.register(nsf, nsf.pending.size === 0)
      }
    }
  }

  /** Registers the pending feeds (or, with `all` or a new source, every feed) of a namespace. */
  private register(nsf: NamespaceFeeds, all: boolean): void {
    if (nsf.registering || this.closed || nsf.feeds.size === 0) return
    const source = this.chooseSource(nsf)
    if (!source) {
      this.failed(nsf, new Error('no live replica known'))
      return
    }
    if (source !== nsf.source) {
      const old = nsf.source
      if (old) this.deps.unsub(old, { ns: nsf.ns, actors: [...nsf.feeds.keys()] }).catch(() => {})
      nsf.source = source
      all = true
    }
    const actors = all ? [...nsf.feeds.keys()] : [...nsf.pending]
    nsf.pending.clear()
    if (actors.length === 0) return
    const feeds = actors.map((actor) => {
      const feed = nsf.feeds.get(actor)!
      return { actor, after: feed.cursor ?? feed.startAfter ?? null }
    })
    nsf.registering = true
    this.counters.registrations++
    this.deps.sub(source, { ns: nsf.ns, feeds }).then(
      (answer) => {
        nsf.registering = false
        nsf.failures = 0
        nsf.hint = ''
        nsf.lastRegisteredMs = performance.now()
        if (nsf.source === source) this.registered(nsf, answer)
        if (nsf.pending.size > 0) this.register(nsf, false)
      },
      (e: unknown) => {
        nsf.registering = false
        for (const actor of actors) if (nsf.feeds.has(actor)) nsf.pending.add(actor)
        const err = e as { code?: string; details?: { leader?: unknown } }
        const hint = typeof err.details?.leader === 'string' ? err.details.leader : ''
        nsf.hint = hint && hint !== source ? hint : ''
        if (nsf.source === source) nsf.source = ''
        this.failed(nsf, e)
      },
    )
  }

  private registered(nsf: NamespaceFeeds, answer: SubAnswer): void {
    for (const f of answer.feeds) {
      const feed = nsf.feeds.get(f.actor)
      if (!feed) continue
      if ('gone' in f) {
        if (!feed.cursor || comparePos(feed.cursor, f.gone) < 0) this.feedGone(nsf, feed, f.gone)
        continue
      }
      if (feed.cursor) continue // a re-registration: the feed keeps its own cursor
      feed.cursor = f.cursor
      for (const state of feed.clients.values()) if (state.phase === 'waiting') this.join(nsf, feed, state)
    }
  }

  private failed(nsf: NamespaceFeeds, e: unknown): void {
    this.counters.registrationFailures++
    nsf.failures++
    const pause = nsf.hint
      ? 0
      : Math.min(this.options.retryMs * 2 ** Math.min(nsf.failures - 1, 5), this.options.retryMs * 20)
    nsf.retryAtMs = performance.now() + pause
    this.deps.log.debug({ ns: nsf.ns, err: String(e), pauseMs: pause }, 'feed registration failed; retrying')
  }
}

/** Checks a moved leader must persist before feeds follow it. */
const MOVE_CONFIRM_CHECKS = 3

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref())
}
