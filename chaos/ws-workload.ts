/**
 * The WebSocket workload: posters post unique messages to the chat room `room` of `chaos-ws`
 * (examples/chat) over HTTP through random live nodes — every post with an idempotency key, so it
 * is retried after an unknown outcome too — while subscribers each hold a real WebSocket (`ws`) to
 * one node for that room and record every frame. A subscriber whose socket closes, errors, never
 * becomes ready, or stays silent while posts are acknowledged reconnects to another live node with
 * `after=<last position>`; told `ACTORMESH_EVENTS_GONE`, it starts afresh (a new segment). What
 * the subscribers saw goes to `ws.jsonl` and is checked by chaos/check/ws-order.ts.
 */
import WebSocket from 'ws'
import { comparePositions, type WsRecord } from './check/ws-order.js'
import type { ChaosCluster, ChaosNode } from './cluster.js'
import type { Random } from './random.js'
import {
  type ClientStats,
  type ClientTiming,
  type HistoryRecorder,
  type PlannedOp,
  perform,
  type Workload,
} from './workload.js'

/** Subscribers unless told otherwise. */
export const SUBSCRIBERS_DEFAULT = 6
/** Posting clients. */
export const POSTERS = 2
/** Process number of the first poster in the history (after the HTTP workloads' 0, 100, 200…). */
export const POSTER_PROCESS_BASE = 300
/** Process number of the closing post. */
const FINAL_POSTER = POSTER_PROCESS_BASE + 99
/** A socket not open within this long is given up (a paused node accepts TCP but never answers). */
const HANDSHAKE_TIMEOUT_MS = 3_000
/** An open socket not subscribed (`ready`) within this long is closed. */
const READY_TIMEOUT_MS = 5_000
/** A ready socket with no frame this long after a post was acknowledged is taken for dead. */
const SILENT_MS = 3_000
/** How often a subscriber looks at its socket's timers. */
const WATCH_MS = 250
/** Pause before a reconnect, at most (a random part of it, from the subscriber's seed). */
const RECONNECT_PAUSE_MS_MAX = 300
/** How long the closing post may keep retrying. */
const FINAL_POST_TIMEOUT_MS = 60_000
/** How long every subscriber has to receive the closing post. */
const FINAL_DELIVERY_TIMEOUT_MS = 30_000
/** Name the posters join the room with. */
const POSTER_NAME = 'chaos'

const NAMESPACE = 'chaos-ws'
const ROOM = 'room'

/** How the run ended for the subscribers: the closing post and who received it. */
export interface WsFinish {
  /** The closing post's text, if one was acknowledged. */
  finalPost: string | undefined
  caughtUp: number[]
  behind: number[]
}

const op = (actor: string, f: string, input: unknown, method: string, payload: string): PlannedOp => ({
  f,
  key: `ws/${actor}`,
  actor,
  input,
  method,
  payload,
  write: true,
})
const postOp = (text: string) => op(ROOM, 'post', text, 'post', JSON.stringify({ from: POSTER_NAME, text }))

/**
 * The chat namespace as a workload: setup deploys it and writes a probe (a fresh name joining the
 * `probe` room), recovery does the same; its clients are the posters below, not `runClient`.
 */
export function wsWorkload(): Workload {
  return {
    name: 'ws',
    namespace: NAMESPACE,
    module: 'chat',
    actors: [ROOM],
    next: (_rnd, client, n) => postOp(`${client}-${n}`),
    output: (_op, body) => body,
    finalRead: (actor) => ({ ...op(actor, 'history', null, 'history', ''), write: false }),
    probe: (n) => op('probe', 'join', `p${n}`, 'join', `p${n}`),
  }
}

/** A record before it is stamped (each kind keeps its own fields). */
type Untimed<T> = T extends unknown ? Omit<T, 'time'> : never

/** Appends subscriber records, each also handed to `sink` (ws.jsonl). */
export class WsRecorder {
  readonly records: WsRecord[] = []
  constructor(
    readonly now: () => number,
    private readonly sink: (r: WsRecord) => void = () => {},
  ) {}

  record(r: Untimed<WsRecord>): void {
    const full = { ...r, time: this.now() } as WsRecord
    this.records.push(full)
    this.sink(full)
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** One subscriber: a socket at a time, resumed on another node whenever it fails. */
class Subscriber {
  /** The last position received, or the ready cursor; undefined: the next socket starts fresh. */
  cursor: string | undefined
  /** Texts of the posts received, to know when the closing post arrived. */
  readonly texts = new Set<string>()
  /** When a post was acknowledged with no frame since (the silence clock). */
  ackPendingSince: number | undefined
  ready = false
  stopped = false
  /** Ends the current socket, saying why (recorded with its close). */
  private abort: ((why: string) => void) | undefined
  private node: ChaosNode | undefined

  constructor(
    readonly sub: number,
    private readonly cluster: ChaosCluster,
    private readonly rnd: Random,
    private readonly rec: WsRecorder,
  ) {}

  async run(first: ChaosNode): Promise<void> {
    let node: ChaosNode | undefined = first
    while (!this.stopped) {
      if (node) {
        const closed = await this.session(node)
        this.rec.record({ sub: this.sub, kind: 'close', node: node.index, ...closed })
      }
      if (this.stopped) break
      await sleep(50 + this.rnd.int(RECONNECT_PAUSE_MS_MAX))
      const others = this.cluster.up().filter((n) => n !== this.node)
      node = others.length > 0 ? this.rnd.pick(others) : this.cluster.up()[0]
    }
  }

  stop(): void {
    this.stopped = true
    this.abort?.('stop')
  }

  /** One socket's life; resolves with how it closed. */
  private session(node: ChaosNode): Promise<{ code: number; reason: string }> {
    this.node = node
    const after = this.cursor
    this.rec.record({ sub: this.sub, kind: 'connect', node: node.index, ...(after ? { after } : {}) })
    const url = `${node.url.replace(/^http/, 'ws')}/v1/ns/${NAMESPACE}/actors/${ROOM}/ws${after ? `?after=${after}` : ''}`
    const ws = new WebSocket(url, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS })
    this.ready = false
    this.ackPendingSince = undefined
    const opened = this.rec.now()
    let why = ''
    const kill = (reason: string) => {
      why ||= reason
      ws.terminate()
    }
    this.abort = kill
    return new Promise((resolve) => {
      const watch = setInterval(() => {
        const t = this.rec.now()
        if (this.stopped) kill('stop')
        else if (!this.ready && t - opened > HANDSHAKE_TIMEOUT_MS + READY_TIMEOUT_MS) kill('no ready')
        else if (this.ready && this.ackPendingSince !== undefined && t - this.ackPendingSince > SILENT_MS)
          kill('silent')
      }, WATCH_MS)
      ws.on('message', (data) => this.frame(node, String(data), after, kill))
      ws.on('error', (e) => {
        why ||= e.message
      })
      ws.on('close', (code, reason) => {
        clearInterval(watch)
        this.ready = false
        resolve({ code, reason: why || String(reason) })
      })
    })
  }

  private frame(node: ChaosNode, text: string, after: string | undefined, kill: (why: string) => void): void {
    let f: { ready?: unknown; pos?: unknown; event?: unknown; error?: unknown; since?: unknown }
    try {
      f = JSON.parse(text)
    } catch {
      kill(`bad frame ${text.slice(0, 40)}`)
      return
    }
    this.ackPendingSince = undefined
    if (f.ready === true && typeof f.pos === 'string') {
      this.ready = true
      this.rec.record({
        sub: this.sub,
        kind: 'ready',
        node: node.index,
        pos: f.pos,
        ...(after ? { after } : {}),
      })
      if (after === undefined) this.cursor = f.pos
    } else if (typeof f.event === 'string' && typeof f.pos === 'string') {
      this.rec.record({ sub: this.sub, kind: 'event', node: node.index, pos: f.pos, payload: f.event })
      if (this.cursor === undefined || comparePositions(f.pos, this.cursor) > 0) this.cursor = f.pos
      try {
        const m = JSON.parse(f.event) as { text?: unknown }
        if (typeof m.text === 'string') this.texts.add(m.text)
      } catch {}
    } else if (f.error === 'ACTORMESH_EVENTS_GONE') {
      const since = typeof f.since === 'string' ? f.since : undefined
      this.rec.record({ sub: this.sub, kind: 'gone', node: node.index, ...(since ? { since } : {}) })
      this.cursor = undefined
      kill('ACTORMESH_EVENTS_GONE')
    } else if (typeof f.error === 'string') {
      kill(f.error)
    }
  }
}

/** The posters and subscribers of one run. */
export class WsClients {
  readonly workload = wsWorkload()
  private readonly subscribers: Subscriber[]
  private running: Promise<void>[] = []

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly history: HistoryRecorder,
    readonly rec: WsRecorder,
    private readonly stats: ClientStats,
    private readonly timing: ClientTiming,
    private readonly streamOf: (label: string) => Random,
    private readonly runTag: string,
    subscribers = SUBSCRIBERS_DEFAULT,
  ) {
    this.subscribers = Array.from(
      { length: subscribers },
      (_, i) => new Subscriber(i, cluster, streamOf(`ws-sub-${i}`), rec),
    )
  }

  /** The posters' name joins the room (a post from a stranger is refused); retried until it is in. */
  async join(timeoutMs: number): Promise<void> {
    const rnd = this.streamOf('ws-join')
    const deadline = Date.now() + timeoutMs
    const join = op(ROOM, 'join', POSTER_NAME, 'join', POSTER_NAME)
    for (;;) {
      const done = await perform(this.cluster, this.workload, join, rnd, `${this.runTag}-join`, this.timing, {
        attempts: 0,
        retries: 0,
        errors: {},
      })
      if (done.type === 'ok') return
      if (Date.now() > deadline)
        throw new Error(`Timed out after ${timeoutMs} ms joining '${POSTER_NAME}' to ${ROOM}`)
    }
  }

  /** Starts the subscribers (spread over the nodes) and, once they are ready, the posters. */
  async start(stop: () => boolean): Promise<Promise<void>[]> {
    const nodes = this.cluster.up()
    this.running = this.subscribers.map((s, i) => s.run(nodes[i % nodes.length]!))
    const deadline = Date.now() + FINAL_DELIVERY_TIMEOUT_MS
    while (this.subscribers.some((s) => !s.ready) && Date.now() < deadline) await sleep(100)
    return Array.from({ length: POSTERS }, (_, p) => this.poster(POSTER_PROCESS_BASE + p, stop))
  }

  private async poster(process: number, stop: () => boolean): Promise<void> {
    const rnd = this.streamOf(`client-${process}`)
    for (let n = 0; !stop(); n++) {
      await this.post(
        process,
        this.workload.next(rnd, process, n, new Map()),
        `${this.runTag}-${process}-${n}`,
        rnd,
      )
      await sleep(rnd.int(this.timing.thinkMsMax + 1))
    }
  }

  /** One post with its retries, recorded in the history; acknowledged ones start the silence clocks. */
  private async post(process: number, planned: PlannedOp, key: string, rnd: Random): Promise<boolean> {
    const base = { process, f: planned.f, key: planned.key }
    this.history.record({ ...base, type: 'invoke', value: planned.input, idempotencyKey: key })
    const done = await perform(this.cluster, this.workload, planned, rnd, key, this.timing, this.stats)
    this.history.record({
      ...base,
      type: done.type,
      value: done.value,
      ...(done.error ? { error: done.error } : {}),
      ...(done.node !== undefined ? { node: String(done.node) } : {}),
    })
    if (done.type !== 'ok') return false
    const now = this.rec.now()
    for (const s of this.subscribers) if (s.ready && s.ackPendingSince === undefined) s.ackPendingSince = now
    return true
  }

  /**
   * After the posters stopped: one closing post (acknowledged; each attempt a new text), then up to
   * FINAL_DELIVERY_TIMEOUT_MS for every subscriber to receive it; then every socket is closed.
   */
  async finish(): Promise<WsFinish> {
    const rnd = this.streamOf('ws-final')
    const deadline = Date.now() + FINAL_POST_TIMEOUT_MS
    let finalPost: string | undefined
    for (let n = 0; finalPost === undefined && Date.now() < deadline; n++) {
      const text = `final-${n}`
      if (await this.post(FINAL_POSTER, postOp(text), `${this.runTag}-final-${n}`, rnd)) finalPost = text
    }
    const until = Date.now() + FINAL_DELIVERY_TIMEOUT_MS
    const has = (s: Subscriber) => finalPost !== undefined && s.texts.has(finalPost)
    while (finalPost !== undefined && !this.subscribers.every(has) && Date.now() < until) await sleep(100)
    await this.stop()
    return {
      finalPost,
      caughtUp: this.subscribers.filter(has).map((s) => s.sub),
      behind: this.subscribers.filter((s) => !has(s)).map((s) => s.sub),
    }
  }

  /** Closes every socket and waits for the subscribers to end. */
  async stop(): Promise<void> {
    for (const s of this.subscribers) s.stop()
    await Promise.all(this.running)
  }
}
