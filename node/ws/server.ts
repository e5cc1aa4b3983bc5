/**
 * WebSocket connections of the gateway: `GET /v1/ns/{ns}/actors/{id}/ws` (also under
 * `/v1/namespaces/`) upgraded with `ws`. A connection receives its actor's broadcasts from the
 * node's `FeedHub` and may send calls, which go through the router like HTTP calls. The frame
 * format is in docs/gateway.md.
 *
 * Bounds: `connectionsMax` per node (answered 503 before the upgrade), `messageBytesMax` per
 * incoming message (`ws` closes with 1009), `sendQueueBytesMax` of unsent bytes per socket
 * (beyond it the socket is closed with 1013 and dropped from its feed, so a slow client never
 * holds back the others), `callsInFlightMax` per socket, and a ping every `pingIntervalMs`: a
 * socket that did not answer the previous one is terminated. The pings are staggered: each socket
 * belongs to one of `PING_SLICES` slices and one slice is pinged every `pingIntervalMs /
 * PING_SLICES`, so ten thousand sockets never cost one long burst of writes (which lands on top of
 * a broadcast's fan-out and shows in its tail latency).
 */
import type { IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocket, WebSocketServer } from 'ws'
import type { CallReply, CallRequest } from '../actor-host.js'
import { httpError } from '../gateway.js'
import { formatPos, type Pos, parsePos } from './events.js'
import type { EndReason, FeedClient, FeedEvent, FeedHub } from './feeds.js'
import { base64EventFrame, type OutFrame, outFrame, textEventFrame, utf8 } from './frames.js'

export interface WsServerOptions {
  /** Open WebSocket connections per node. */
  connectionsMax: number
  /** Unsent bytes a socket may hold before it is closed with 1013. */
  sendQueueBytesMax: number
  /** Bytes of one incoming message (the `ws` `maxPayload`). */
  messageBytesMax: number
  /** A ping goes out this often; a socket that did not answer the last one is dropped. */
  pingIntervalMs: number
  /** Calls one socket may have in flight. */
  callsInFlightMax: number
  /** A socket we closed that has not finished its closing handshake is terminated after this. */
  closeTimeoutMs: number
}

/** How many parts the sockets' pings are spread over within one `pingIntervalMs`. */
export const PING_SLICES = 16

export const WS_SERVER_DEFAULTS: WsServerOptions = {
  connectionsMax: 20_000,
  sendQueueBytesMax: 1 << 20,
  messageBytesMax: 2 << 20,
  pingIntervalMs: 15_000,
  callsInFlightMax: 64,
  closeTimeoutMs: 10_000,
}

/** Close codes of the application range (docs/gateway.md). */
export const CLOSE_EVENTS_GONE = 4410
export const CLOSE_NAMESPACE_GONE = 4404

/** An HTTP answer instead of an upgrade. */
export interface Refusal {
  status: number
  code: string
  message: string
}

export interface WsServerDeps {
  hub: FeedHub
  call(req: CallRequest): Promise<CallReply>
  namespaceExists(ns: string): boolean
  /** Access control for the upgrade request (the gateway's token check); a refusal is answered as HTTP. */
  authorize?(req: IncomingMessage, ns: string): Refusal | undefined
  log: Logger
}

const ROUTE = /^\/v1\/(?:ns|namespaces)\/([^/]+)\/actors\/([^/]+)\/ws$/

/** Accepts upgrades and runs the connections (see the file comment). */
export class WsServer {
  private readonly wss: WebSocketServer
  private readonly conns = new Set<Connection>()
  private upgrading = 0
  private closing = false
  private timer: NodeJS.Timeout | undefined
  /** The sockets of each ping slice: a tick pings one slice without looking at the others. */
  private readonly slices = Array.from({ length: PING_SLICES }, () => new Set<Connection>())
  /** The slice the next ping tick covers, and the slice the next accepted socket joins. */
  private pingSlice = 0
  private joinSlice = 0
  readonly options: WsServerOptions
  readonly counters = { accepted: 0, refused: 0, slowClosed: 0, badFrames: 0, deadDropped: 0, gone: 0 }

  constructor(
    readonly deps: WsServerDeps,
    options: Partial<WsServerOptions> = {},
  ) {
    this.options = { ...WS_SERVER_DEFAULTS, ...options }
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.messageBytesMax,
      perMessageDeflate: false,
      clientTracking: false,
    })
  }

  start(): void {
    this.timer = setInterval(() => this.ping(), Math.max(1, this.options.pingIntervalMs / PING_SLICES))
    this.timer.unref()
  }

  /** The HTTP server's `upgrade` event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {}) // a reset before the handshake ends is not ours to report
    const url = new URL(req.url ?? '/', 'http://gateway')
    const route = ROUTE.exec(url.pathname)
    if (!route) {
      this.refuse(socket, 404, 'ACTORMESH_NOT_FOUND', `No WebSocket route '${url.pathname}'`)
      return
    }
    if (this.closing) {
      this.refuse(socket, 503, 'ACTORMESH_RPC_CLOSED', 'The node is stopping')
      return
    }
    if (this.conns.size + this.upgrading >= this.options.connectionsMax) {
      this.refuse(
        socket,
        503,
        'ACTORMESH_WS_CONNECTIONS_MAX',
        `Cannot accept a WebSocket: connectionsMax '${this.options.connectionsMax}' reached`,
      )
      return
    }
    let target: { ns: string; actor: string; after: Pos | undefined; encoding: Encoding }
    try {
      target = this.target(route, url)
    } catch (e) {
      this.refuse(socket, 400, 'ACTORMESH_BAD_REQUEST', (e as Error).message)
      return
    }
    // The token first: a caller without one learns nothing, not even whether the namespace exists.
    const denied = this.deps.authorize?.(req, target.ns)
    if (denied) {
      this.refuse(socket, denied.status, denied.code, denied.message)
      return
    }
    if (!this.deps.namespaceExists(target.ns)) {
      this.refuse(socket, 404, 'ACTORMESH_NAMESPACE_NOT_FOUND', `No namespace '${target.ns}'`)
      return
    }
    if (!this.deps.hub.canAttach(target.ns, target.actor)) {
      this.refuse(
        socket,
        503,
        'ACTORMESH_WS_CONNECTIONS_MAX',
        'Cannot follow another actor: feedsMax reached',
      )
      return
    }
    this.upgrading++
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.upgrading--
      if (this.closing) {
        ws.close(1001, 'node stopping')
        return
      }
      this.accept(ws, target)
    })
  }

  /** Closes every connection with 1001 (the node is stopping) and refuses new ones. */
  closeAll(): void {
    this.closing = true
    for (const c of [...this.conns]) c.close(1001, 'node stopping')
  }

  /** Terminates whatever is left (after `closeAll`). */
  stop(): void {
    this.closing = true
    clearInterval(this.timer)
    for (const c of [...this.conns]) c.terminate()
  }

  stats(): { connections: number } & WsServer['counters'] {
    return { connections: this.conns.size, ...this.counters }
  }

  /** @internal a connection ended. */
  removed(conn: Connection): void {
    this.slices[conn.pingSlice]!.delete(conn)
    if (this.conns.delete(conn)) this.deps.hub.detach(conn)
  }

  private target(route: RegExpExecArray, url: URL) {
    const ns = decodeURIComponent(route[1]!)
    const actor = decodeURIComponent(route[2]!)
    if (actor.startsWith('\u0000'))
      throw new TypeError(`Bad actor id '${actor}': it must not start with a NUL character`)
    const afterText = url.searchParams.get('after')
    const encoding = url.searchParams.get('encoding') ?? 'text'
    if (encoding !== 'text' && encoding !== 'base64')
      throw new TypeError(`Bad encoding '${encoding}': use 'text' or 'base64'`)
    return {
      ns,
      actor,
      after: afterText === null ? undefined : parsePos(afterText),
      encoding: encoding as Encoding,
    }
  }

  private accept(
    ws: WebSocket,
    target: { ns: string; actor: string; after: Pos | undefined; encoding: Encoding },
  ) {
    const conn = new Connection(this, ws, target.ns, target.actor, target.after, target.encoding)
    conn.pingSlice = this.joinSlice
    this.joinSlice = (this.joinSlice + 1) % PING_SLICES
    this.slices[conn.pingSlice]!.add(conn)
    this.conns.add(conn)
    this.counters.accepted++
    ws.on('close', () => this.removed(conn))
    ws.on('error', (e) => {
      this.deps.log.debug({ ns: conn.ns, actor: conn.actor, err: String(e) }, 'websocket error')
      if (/max payload|invalid|unexpected|mask/i.test(String(e))) this.counters.badFrames++
    })
    ws.on('pong', () => {
      conn.alive = true
    })
    ws.on('message', (data, isBinary) => conn.message(data as Buffer, isBinary))
    this.deps.hub.attach(conn)
  }

  private refuse(socket: Duplex, status: number, code: string, message: string): void {
    this.counters.refused++
    const body = JSON.stringify({ code, message })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n` +
        `${status === 503 ? 'retry-after: 1\r\n' : ''}\r\n${body}`,
    )
  }

  /** Pings one slice of the sockets, terminating those that did not answer their last ping. */
  private ping(): void {
    const slice = this.pingSlice
    this.pingSlice = (slice + 1) % PING_SLICES
    for (const c of this.slices[slice]!) {
      if (!c.alive) {
        this.counters.deadDropped++
        c.terminate()
        continue
      }
      c.alive = false
      c.ws.ping()
    }
  }
}

type Encoding = 'text' | 'base64'

/** One WebSocket: a client of its actor's feed, and a caller. */
class Connection implements FeedClient {
  alive = true
  /** Which of the server's ping slices this socket is pinged with. */
  pingSlice = 0
  private inflight = 0
  private closed = false
  private closeTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly server: WsServer,
    readonly ws: WebSocket,
    readonly ns: string,
    readonly actor: string,
    readonly after: Pos | undefined,
    private readonly encoding: Encoding,
  ) {}

  deliver(event: FeedEvent): void {
    this.send(event.frame(this.encoding, this.encoding === 'text' ? textEventFrame : base64EventFrame))
  }

  ready(cursor: Pos): void {
    this.sendJson({ ready: true, pos: formatPos(cursor) })
  }

  end(reason: EndReason): void {
    if ('slow' in reason) {
      this.slow(reason.slow)
      return
    }
    if ('missing' in reason) {
      this.sendJson({
        error: 'ACTORMESH_NAMESPACE_NOT_FOUND',
        message: `Namespace '${reason.missing}' was deleted`,
      })
      this.close(CLOSE_NAMESPACE_GONE, 'namespace deleted')
      return
    }
    this.server.counters.gone++
    const since = formatPos(reason.gone)
    this.sendJson({
      error: 'ACTORMESH_EVENTS_GONE',
      message: `The event buffer of actor '${this.actor}' reaches back only to ${since}; resubscribe without 'after' (and reload the actor's state)`,
      since,
    })
    this.close(CLOSE_EVENTS_GONE, 'events gone')
  }

  message(data: Buffer, isBinary: boolean): void {
    if (this.closed) return
    if (isBinary) {
      this.bad(1003, 'binary frames are not accepted; send JSON text frames')
      return
    }
    let msg: unknown
    try {
      msg = JSON.parse(data.toString('utf8'))
    } catch {
      this.bad(1007, 'the frame is not JSON')
      return
    }
    let call: { id: number | string; req: CallRequest }
    try {
      call = this.parseCall(msg)
    } catch (e) {
      this.bad(1007, (e as Error).message)
      return
    }
    const { options } = this.server
    if (this.inflight >= options.callsInFlightMax) {
      this.sendJson({
        id: call.id,
        ok: false,
        code: 'ACTORMESH_WS_CALLS_MAX',
        message: `Call ${JSON.stringify(call.id)} refused: ${options.callsInFlightMax} calls are in flight on this socket`,
        retryable: true,
      })
      return
    }
    this.inflight++
    this.server.deps
      .call(call.req)
      .then(
        (out) =>
          this.sendJson({
            id: call.id,
            ok: true,
            ...this.payloadField('reply', out.reply),
            servedBy: out.servedBy,
            ...(out.replayed ? { replayed: true } : {}),
          }),
        (e: unknown) => {
          const { status, code } = httpError(e)
          const retryAfterMs = (e as { details?: { retryAfterMs?: unknown } }).details?.retryAfterMs
          this.sendJson({
            id: call.id,
            ok: false,
            code,
            message: (e as Error).message,
            retryable: status === 503,
            ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : {}),
          })
        },
      )
      .finally(() => this.inflight--)
  }

  close(code: number, reason: string): void {
    if (this.closed) return
    this.closed = true
    this.server.removed(this)
    this.ws.close(code, reason)
    this.closeTimer = setTimeout(() => this.ws.terminate(), this.server.options.closeTimeoutMs)
    this.closeTimer.unref()
    this.ws.once('close', () => clearTimeout(this.closeTimer))
  }

  terminate(): void {
    this.closed = true
    clearTimeout(this.closeTimer)
    this.server.removed(this)
    this.ws.terminate()
  }

  private slow(why: string): void {
    if (this.closed) return
    this.server.counters.slowClosed++
    this.server.deps.log.info({ ns: this.ns, actor: this.actor, why }, 'closing a slow WebSocket client')
    this.close(1013, 'slow consumer')
  }

  private bad(code: number, why: string): void {
    this.server.counters.badFrames++
    this.sendJson({ error: 'ACTORMESH_WS_BAD_FRAME', message: `Bad frame: ${why}` })
    this.close(code, 'bad frame')
  }

  /**
   * Sends unless the socket's unsent bytes would pass `sendQueueBytesMax` (one frame always fits
   * an empty queue). A frame built once for every socket is written to the socket as it is: `ws`
   * writes each frame straight to its socket when permessage-deflate is off (this server never
   * negotiates it), so this keeps frame order, and one header for all sockets instead of one per
   * send roughly halves the cost of a send (333 sockets: 7.5–15 ms of CPU with `ws.send`, 5–7.7 ms
   * written as built, on the 2-core test machine).
   */
  private send(out: OutFrame): void {
    if (this.closed) return
    const queued = this.ws.bufferedAmount
    if (queued > 0 && queued + out.framed.byteLength > this.server.options.sendQueueBytesMax) {
      this.slow(`${queued} bytes unsent, over sendQueueBytesMax '${this.server.options.sendQueueBytesMax}'`)
      return
    }
    const socket = (this.ws as unknown as { _socket?: Duplex })._socket
    if (socket?.writable && this.ws.readyState === WebSocket.OPEN) socket.write(out.framed)
    else this.ws.send(out.payload, { binary: false })
  }

  private sendJson(v: unknown): void {
    this.send(outFrame(Buffer.from(JSON.stringify(v))))
  }

  /** `{[name]: text}` when the bytes are UTF-8 and the socket takes text, else base64 with `encoding`. */
  private payloadField(name: string, bytes: Uint8Array): Record<string, string> {
    if (this.encoding === 'text') {
      const text = utf8(bytes)
      if (text !== undefined) return { [name]: text }
    }
    return { [name]: Buffer.from(bytes).toString('base64'), encoding: 'base64' }
  }

  private parseCall(msg: unknown): { id: number | string; req: CallRequest } {
    const m = msg as Record<string, unknown>
    if (typeof m !== 'object' || m === null || Array.isArray(m))
      throw new TypeError('a call must be a JSON object')
    const id = m.id
    if (!(typeof id === 'number' && Number.isFinite(id)) && !(typeof id === 'string' && id.length <= 128))
      throw new TypeError(`bad id ${JSON.stringify(id)}: use a number or a string of at most 128 characters`)
    if (typeof m.method !== 'string' || m.method.length === 0 || m.method.length > 256)
      throw new TypeError(`bad method ${JSON.stringify(m.method)} in call ${JSON.stringify(id)}`)
    const payload = m.payload ?? ''
    if (typeof payload !== 'string')
      throw new TypeError(`payload of call ${JSON.stringify(id)} must be a string`)
    const enc = m.encoding ?? 'text'
    if (enc !== 'text' && enc !== 'base64')
      throw new TypeError(`bad encoding ${JSON.stringify(enc)}: use 'text' or 'base64'`)
    if (m.key !== undefined && typeof m.key !== 'string') throw new TypeError('key must be a string')
    if (m.readonly !== undefined && typeof m.readonly !== 'boolean')
      throw new TypeError('readonly must be a boolean')
    if (m.consistency !== undefined && m.consistency !== 'strong' && m.consistency !== 'stale')
      throw new TypeError(`bad consistency ${JSON.stringify(m.consistency)}: use 'strong' or 'stale'`)
    return {
      id,
      req: {
        namespace: this.ns,
        actor: this.actor,
        method: m.method,
        payload: new Uint8Array(
          enc === 'base64' ? Buffer.from(payload, 'base64') : Buffer.from(payload, 'utf8'),
        ),
        ...(m.key !== undefined ? { idempotencyKey: m.key as string } : {}),
        ...(m.readonly === true ? { readonly: true } : {}),
        ...(m.consistency !== undefined ? { consistency: m.consistency as 'strong' | 'stale' } : {}),
      },
    }
  }
}
