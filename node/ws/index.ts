/**
 * The WebSocket fan-out of a node (the face of `node/ws/`): the event buffer every replica fills
 * from its applied entries, the source side that pushes broadcasts to subscriber nodes, the
 * subscriber side that feeds local clients, and the WebSocket server. See docs/gateway.md.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { CallReply, CallRequest } from '../actor-host.js'
import type { AppliedEntry, NamespaceStateMachine } from '../namespace-group.js'
import type { Rpc } from '../rpc.js'
import { EventLog, type EventLogLimits } from './events.js'
import { type FanoutOptions, FanoutServer } from './fanout.js'
import { FeedHub, type FeedHubOptions } from './feeds.js'
import {
  checkPushAnswer,
  checkPushRequest,
  checkReplayAnswer,
  checkReplayRequest,
  checkSubAnswer,
  checkSubRequest,
  checkUnsubRequest,
  WS_PUSH,
  WS_REPLAY,
  WS_SUB,
  WS_UNSUB,
} from './protocol.js'
import { type Refusal, WsServer, type WsServerOptions } from './server.js'

export { END, formatPos, type Pos, parsePos } from './events.js'
export { CLOSE_EVENTS_GONE, type Refusal, WS_SERVER_DEFAULTS, type WsServerOptions } from './server.js'

/** Every limit of the fan-out, by part; each has a default. */
export interface WsOptions {
  server?: Partial<WsServerOptions>
  events?: Partial<EventLogLimits>
  fanout?: Partial<FanoutOptions>
  feeds?: Partial<FeedHubOptions>
  /** Milliseconds an RPC of the fan-out (sub, push, replay) may take. */
  rpcTimeoutMs?: number
}

/** What the fan-out needs from the node. */
export interface WsDeps {
  self: string
  rpc: Rpc
  /** The leader of a namespace as this node knows it ('' if none): the router's view. */
  leaderOf(ns: string): string
  /** The namespace's voters, or undefined when the catalog has no such namespace. */
  voters(ns: string): string[] | undefined
  /** Membership holds the peer alive. */
  alive(peer: string): boolean
  /** Runs a call wherever it must run (the router). */
  call(req: CallRequest): Promise<CallReply>
  /** Access control for upgrades, as for the gateway's HTTP routes (none: every upgrade is let in). */
  authorize?(req: IncomingMessage, ns: string): Refusal | undefined
  log: Logger
}

/** The node's WebSocket fan-out. */
export interface WsService {
  /** A namespace replica is hosted here: its broadcasts are buffered from its applied index on. */
  onHosted(ns: string, machine: NamespaceStateMachine): void
  /**
   * A hosted namespace installed a snapshot: it skipped entries this buffer never saw, so the
   * buffer restarts at the installed copy's applied index (the namespace group's `installed` hook).
   */
  onInstalled(ns: string, machine: NamespaceStateMachine): void
  /**
   * A restore entry at `index` rolled the namespace's state back (the `restored` hook): the
   * broadcasts before it describe a history that no longer holds, so the buffer restarts there and
   * every socket behind it is told `ACTORMESH_EVENTS_GONE` (reload the actor's state).
   */
  onRestored(ns: string, index: number): void
  /** Entries a hosted namespace applied (the namespace group's `applied` hook). */
  onApplied(ns: string, entries: AppliedEntry[]): void
  /** The HTTP server's `upgrade` event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** A peer is dead: forget its subscriptions. */
  peerGone(peer: string): void
  /** Closes every WebSocket with 1001 (drain); new ones are refused. */
  closeAll(): void
  stop(): void
  stats(): WsStats
}

export interface WsStats {
  connections: number
  feeds: number
  clients: number
  interests: number
  subscribers: number
  bufferedActors: number
  bufferedBytes: number
  /** The leader each namespace's feeds are registered with. */
  sources: Record<string, string>
  /** Time a push took to reach every local client of its actors, over the last 1,024 pushes. */
  deliver: { count: number; p50Ms: number; p99Ms: number; maxMs: number }
  counters: WsServer['counters'] & FeedHub['counters'] & FanoutServer['counters']
}

/** Builds the fan-out; `start` is implied (its timers are unref'd). */
export function createWsService(deps: WsDeps, options: WsOptions = {}): WsService {
  const log = deps.log
  const events = new EventLog(options.events)
  const timeoutMs = options.rpcTimeoutMs ?? 5_000
  let hub: FeedHub | undefined
  const fanout = new FanoutServer(
    {
      self: deps.self,
      events,
      leader: deps.leaderOf,
      log,
      push: async (peer, req) => {
        if (peer === deps.self) {
          // Writing to this node's sockets takes long with thousands of them (tens of ms): let the
          // pushes to other nodes, queued in the same flush, reach their sockets first so that
          // every node writes to its clients at once instead of one after the other.
          await new Promise((resolve) => setImmediate(resolve))
          return hub!.receivePush(peer, req)
        }
        return checkPushAnswer(await deps.rpc.request(peer, WS_PUSH, req, { timeoutMs }))
      },
    },
    options.fanout,
  )
  hub = new FeedHub(
    {
      self: deps.self,
      sub: async (peer, req) =>
        peer === deps.self
          ? fanout.subscribe(peer, req)
          : checkSubAnswer(await deps.rpc.request(peer, WS_SUB, req, { timeoutMs })),
      unsub: async (peer, req) => {
        if (peer === deps.self) fanout.unsubscribe(peer, req)
        else await deps.rpc.request(peer, WS_UNSUB, req, { timeoutMs })
      },
      replay: async (peer, req) =>
        peer === deps.self
          ? fanout.replay(req)
          : checkReplayAnswer(await deps.rpc.request(peer, WS_REPLAY, req, { timeoutMs })),
      leaderOf: deps.leaderOf,
      voters: deps.voters,
      alive: (peer) => peer === deps.self || deps.alive(peer),
      log,
    },
    options.feeds,
  )
  const feeds = hub
  const server = new WsServer(
    {
      hub: feeds,
      call: deps.call,
      namespaceExists: (ns) => deps.voters(ns) !== undefined,
      ...(deps.authorize ? { authorize: deps.authorize } : {}),
      log,
    },
    options.server,
  )
  deps.rpc.handle(WS_SUB, async (from, p) => fanout.subscribe(from, checkSubRequest(p)))
  deps.rpc.handle(WS_UNSUB, async (from, p) => {
    fanout.unsubscribe(from, checkUnsubRequest(p))
    return {}
  })
  deps.rpc.handle(WS_REPLAY, async (_from, p) => fanout.replay(checkReplayRequest(p)))
  deps.rpc.handle(WS_PUSH, async (from, p) => feeds.receivePush(from, checkPushRequest(p)))
  feeds.start()
  server.start()
  return {
    onHosted(ns, machine) {
      events.reset(ns, machine.store.applied().index)
    },
    onInstalled(ns, machine) {
      const since = machine.store.applied().index
      events.reset(ns, since)
      log.info({ ns, since }, 'event buffer restarted after a snapshot install')
    },
    onRestored(ns, index) {
      if (!events.has(ns)) return
      events.reset(ns, index)
      log.info({ ns, since: index }, 'event buffer restarted after a restore')
    },
    onApplied(ns, entries) {
      if (!events.has(ns)) return
      const touched = events.append(
        ns,
        entries.map((e) =>
          e.entry.events ? { index: e.index, events: e.entry.events } : { index: e.index },
        ),
      )
      if (touched.size > 0) fanout.appended(ns, touched)
    },
    handleUpgrade: (req, socket, head) => server.handleUpgrade(req, socket, head),
    peerGone: (peer) => fanout.peerGone(peer),
    closeAll: () => server.closeAll(),
    stop() {
      server.stop()
      feeds.stop()
      fanout.close()
    },
    stats() {
      const s = server.stats()
      const h = feeds.stats()
      const f = fanout.stats()
      const e = events.stats()
      return {
        connections: s.connections,
        feeds: h.feeds,
        clients: h.clients,
        interests: f.interests,
        subscribers: f.subscribers,
        bufferedActors: e.actors,
        bufferedBytes: e.bytes,
        sources: h.sources,
        deliver: feeds.deliverMs.summary(),
        counters: { ...server.counters, ...feeds.counters, ...fanout.counters },
      }
    },
  }
}
