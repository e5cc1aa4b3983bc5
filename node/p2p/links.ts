import type { Connection, IdentifyResult, Stream, StreamMessageEvent } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { FrameReader, lengthPrefixedAll } from './frames.js'
import type { Host } from './host.js'
import { quietWindowUpdates } from './yamux-window.js'

/** The protocol of the long-lived frame stream between two nodes. */
export const LINK_PROTOCOL = '/actormesh/link/1.0.0'

export interface LinkOptions {
  /** Largest frame accepted or sent; a larger incoming frame closes the link. */
  frameBytesMax?: number
  /** Bytes queued for one peer while its stream is slow or reconnecting; beyond it frames drop. */
  sendQueueBytesMax?: number
  /** Reconnection backoff bounds, in milliseconds. */
  reconnectMinMs?: number
  reconnectMaxMs?: number
  /** Abuse reports (undecodable or unknown frames) tolerated per peer per minute before disconnecting. */
  abuseReportsMax?: number
  /**
   * Longest wait for a stream's back-pressure to clear; past it the stream counts as dead (the
   * other end no longer reads it) and the link reconnects.
   */
  drainTimeoutMs?: number
  /** A stream with nothing sent for this long gets an empty keepalive frame. */
  keepaliveMs?: number
  /**
   * A stream on which nothing (not even a keepalive) arrived for this long counts as dead — the
   * other end no longer writes to it, or its writes go nowhere — and the link reconnects.
   */
  silentTimeoutMs?: number
  /** Told when the stream to a peer closes or cannot be opened (requests waiting on it fail fast). */
  /** `closed`: an open stream ended; `unreachable`: a dial or stream open failed. */
  onDown?: (peer: string, why: 'closed' | 'unreachable') => void
  /** Chaos tests only (`--chaos`, node/chaos.ts): may drop or hold back outgoing frames. */
  faults?: LinkFaults
}

/** A hook on the send path that may drop a frame, or hold it back and `deliver` it later. */
export interface LinkFaults {
  /** True when it took the frame (dropped it, or will call `deliver`). */
  intercept(peer: string, deliver: () => void): boolean
}

/** Counters the metrics endpoint exposes. */
export interface LinkCounters {
  framesSent: number
  framesReceived: number
  framesDropped: number
  abuseDisconnects: number
  /** Streams given up because nothing arrived on them for `silentTimeoutMs`. */
  silentStreamsClosed: number
  /** Checks that found this process had stalled, so the stall was not counted as silence. */
  stallsForgiven: number
}

interface Link {
  peer: string
  stream: Stream | undefined
  queue: Uint8Array[]
  queueBytes: number
  writing: boolean
  /** A flush is queued (`setImmediate`): frames sent before it runs go out in one write. */
  flushQueued: boolean
  /** An outbound stream is being opened: never open two at once. */
  opening: boolean
  backoffMs: number
  reconnectTimer: NodeJS.Timeout | undefined
  abuse: number[]
  /** When the current stream last delivered a frame, and when a frame was last written to it. */
  receivedAtMs: number
  sentAtMs: number
}

/**
 * One long-lived, bidirectional stream per peer pair, carrying length-prefixed frames. A stream
 * per request measured ten times slower; a shared stream also keeps frames in order. To avoid two
 * streams when both ends connect at once, the node with the smaller peer id opens the stream and
 * the other end only makes sure a connection exists. Writes go through a bounded queue that
 * follows the stream's back-pressure (`drain`); a frame that does not fit is dropped and counted —
 * Raft retransmits what matters.
 */
export class PeerLinks {
  readonly counters: LinkCounters = {
    framesSent: 0,
    framesReceived: 0,
    framesDropped: 0,
    abuseDisconnects: 0,
    silentStreamsClosed: 0,
    stallsForgiven: 0,
  }
  private readonly links = new Map<string, Link>()
  private readonly frameBytesMax: number
  private readonly sendQueueBytesMax: number
  private readonly reconnectMinMs: number
  private readonly reconnectMaxMs: number
  private readonly abuseReportsMax: number
  private readonly drainTimeoutMs: number
  private readonly keepaliveMs: number
  /** How often `checkStreams` runs. */
  private readonly checkEveryMs: number
  private readonly silentTimeoutMs: number
  private keepaliveTimer: NodeJS.Timeout | undefined
  /** Said once: a link stream `quietWindowUpdates` could not adjust (node/p2p/yamux-window.ts). */
  private warnedWindowUpdates = false
  /** When `checkStreams` last ran (its own lateness shows this process was stalled). */
  private checkedAtMs = 0
  private readonly onDown: (peer: string, why: 'closed' | 'unreachable') => void
  private readonly faults: LinkFaults | undefined
  private readonly self: string
  private closed = false
  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    if (evt.detail.protocols.includes(LINK_PROTOCOL)) this.connect(this.link(evt.detail.peerId.toString()))
  }

  constructor(
    private readonly host: Host,
    private readonly onFrame: (peer: string, frame: Uint8Array) => void,
    private readonly log: Logger,
    options: LinkOptions = {},
  ) {
    this.self = host.peerId.toString()
    this.frameBytesMax = options.frameBytesMax ?? 16 << 20
    this.sendQueueBytesMax = options.sendQueueBytesMax ?? 64 << 20
    this.reconnectMinMs = options.reconnectMinMs ?? 50
    this.reconnectMaxMs = options.reconnectMaxMs ?? 2_000
    this.abuseReportsMax = options.abuseReportsMax ?? 100
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5_000
    this.keepaliveMs = options.keepaliveMs ?? 1_000
    this.checkEveryMs = Math.min(this.keepaliveMs, 1_000) / 2
    this.silentTimeoutMs = options.silentTimeoutMs ?? 6_000
    if (!(this.keepaliveMs < this.silentTimeoutMs))
      throw new RangeError(
        `Link timings must satisfy keepaliveMs < silentTimeoutMs (got ${this.keepaliveMs} and ${this.silentTimeoutMs})`,
      )
    this.onDown = options.onDown ?? (() => {})
    this.faults = options.faults
  }

  /** Registers the protocol handler; call once after the host started. */
  async start(): Promise<void> {
    await this.host.handle(LINK_PROTOCOL, (stream, connection) => this.accept(stream, connection), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    })
    this.host.addEventListener('peer:identify', this.onIdentify)
    this.checkedAtMs = performance.now()
    this.keepaliveTimer = setInterval(() => this.checkStreams(), this.checkEveryMs)
    this.keepaliveTimer.unref()
  }

  /**
   * Keeps every stream provably alive in both directions: an empty frame on a stream with nothing
   * sent for `keepaliveMs`, and a stream with nothing received for `silentTimeoutMs` is aborted
   * (the other end sees the reset) and the link redials. A chaos run once kept one direction of a
   * link dead for 30 s after a partition healed while the other direction worked and neither end
   * saw the stream close; whatever the cause, silence now ends it.
   */
  private checkStreams(): void {
    const now = performance.now()
    // Silence measured across a stall of this process (paused, starved of CPU, a long GC) is not
    // the peer's: what it sent meanwhile may still wait in the socket, and timers run before the
    // poll phase reads it. The stall's length is taken off every link's silence.
    const stalledMs = now - this.checkedAtMs - this.checkEveryMs
    this.checkedAtMs = now
    if (stalledMs > this.checkEveryMs) {
      this.counters.stallsForgiven++
      for (const link of this.links.values()) link.receivedAtMs += stalledMs
    }
    for (const link of this.links.values()) {
      const stream = link.stream
      if (!stream) continue
      if (now - link.receivedAtMs > this.silentTimeoutMs) {
        this.counters.silentStreamsClosed++
        this.log.warn(
          { peer: link.peer, silentMs: Math.round(now - link.receivedAtMs) },
          'nothing received on the link stream; reconnecting',
        )
        stream.abort(new Error(`nothing received for ${this.silentTimeoutMs} ms`))
        this.streamGone(link, stream)
        // Redial at once, even with nothing queued: the peer was in use a moment ago.
        this.connect(this.link(link.peer))
      } else if (now - link.sentAtMs >= this.keepaliveMs && link.queue.length === 0) {
        this.enqueue(link.peer, KEEPALIVE)
      }
    }
  }

  /** Ensures a stream to `peer` (e.g. a new group member) even before there is a frame to send. */
  ensure(peer: string): void {
    if (peer !== this.self) this.connect(this.link(peer))
  }

  /** Queues `frame` for `peer`; returns false when it was dropped (queue full or link closed). */
  send(peer: string, frame: Uint8Array): boolean {
    if (this.closed || peer === this.self) return false
    if (frame.byteLength > this.frameBytesMax) {
      throw new RangeError(
        `Cannot send a ${frame.byteLength}-byte frame: frameBytesMax is ${this.frameBytesMax}`,
      )
    }
    if (this.faults?.intercept(peer, () => this.enqueue(peer, frame))) return true
    return this.enqueue(peer, frame)
  }

  private enqueue(peer: string, frame: Uint8Array): boolean {
    if (this.closed) return false
    const link = this.link(peer)
    if (link.queueBytes + frame.byteLength > this.sendQueueBytesMax) {
      this.counters.framesDropped++
      return false
    }
    link.queue.push(frame)
    link.queueBytes += frame.byteLength
    if (link.stream) this.queueFlush(link)
    else this.connect(link)
    return true
  }

  /**
   * Flushes `link` after the event loop's current I/O callbacks, so that the frames they send — a
   * turn's Raft messages, the RPC replies settled with them, and the calls forwarded by every HTTP
   * request read in the same poll — share one yamux frame, one Noise message and one write system
   * call instead of one each. A microtask flushed after each callback instead: at 256 clients a
   * node wrote ~480 times a second with 1.6 frames a write; after the poll it writes ~135 times
   * with ~4.8 (the frames wait only for callbacks already due, so one call is not slowed).
   */
  private queueFlush(link: Link): void {
    if (link.flushQueued) return
    link.flushQueued = true
    setImmediate(() => {
      link.flushQueued = false
      void this.flush(link)
    })
  }

  /** Whether a stream to `peer` is open right now. */
  connected(peer: string): boolean {
    return this.links.get(peer)?.stream !== undefined
  }

  /**
   * A frame from `peer` could not be used (undecodable, unknown group). Past `abuseReportsMax` in
   * a minute the connection is closed; the peer may reconnect and is judged afresh.
   */
  reportAbuse(peer: string): void {
    const link = this.links.get(peer)
    if (!link) return
    const now = Date.now()
    link.abuse = link.abuse.filter((t) => now - t < 60_000)
    link.abuse.push(now)
    if (link.abuse.length <= this.abuseReportsMax) return
    this.counters.abuseDisconnects++
    link.abuse = []
    this.log.warn({ peer }, 'closing connection: too many bad frames')
    link.stream?.abort(new Error('too many bad frames'))
    void this.host.hangUp(peerIdFromString(peer)).catch(() => {})
  }

  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.keepaliveTimer)
    this.host.removeEventListener('peer:identify', this.onIdentify)
    for (const link of this.links.values()) {
      clearTimeout(link.reconnectTimer)
      link.queue = []
      link.stream?.abort(new Error('node closing'))
    }
    this.links.clear()
    await this.host.unhandle(LINK_PROTOCOL).catch(() => {})
  }

  private link(peer: string): Link {
    let link = this.links.get(peer)
    if (!link) {
      link = {
        peer,
        stream: undefined,
        queue: [],
        queueBytes: 0,
        writing: false,
        flushQueued: false,
        opening: false,
        backoffMs: this.reconnectMinMs,
        reconnectTimer: undefined,
        abuse: [],
        receivedAtMs: 0,
        sentAtMs: 0,
      }
      this.links.set(peer, link)
    }
    return link
  }

  private accept(stream: Stream, connection: Connection): void {
    this.adopt(this.link(connection.remotePeer.toString()), stream)
  }

  /**
   * When both ends opened a stream at once, both keep the one opened by the smaller peer id, so
   * they agree without a round trip; a stream from the same opener replaces the old one (the
   * peer restarted).
   */
  private adopt(link: Link, stream: Stream): void {
    // The entry may have been forgotten (closed with nothing queued) while this stream was opening.
    const current = this.links.get(link.peer)
    if (current && current !== link) link = current
    else if (!current) this.links.set(link.peer, link)
    if (this.closed) {
      stream.abort(new Error('node closing'))
      return
    }
    const opener = (s: Stream) => (s.direction === 'outbound' ? this.self : link.peer)
    if (link.stream && opener(link.stream) < opener(stream)) {
      stream.abort(new Error('duplicate link stream'))
      return
    }
    link.stream?.abort(new Error('replaced by a newer stream'))
    this.attach(link, stream)
  }

  /**
   * Makes sure a stream will exist. The smaller id opens it at once; the larger id first makes
   * sure a connection exists and gives the other end a moment to open it, then opens its own.
   */
  private connect(link: Link): void {
    if (link.reconnectTimer || link.stream || this.closed) return
    if (this.self < link.peer) {
      this.openStream(link)
      return
    }
    this.host
      .dial(peerIdFromString(link.peer))
      .then(() => {
        const timer = setTimeout(() => this.openStream(link), this.reconnectMinMs * 4)
        timer.unref()
      })
      .catch((e: unknown) => {
        this.log.debug({ peer: link.peer, err: String(e) }, 'dial failed')
        this.onDown(link.peer, 'unreachable')
        this.scheduleReconnect(link)
      })
  }

  private openStream(link: Link): void {
    if (link.stream || link.opening || this.closed) return
    link.opening = true
    this.host
      .dialProtocol(peerIdFromString(link.peer), LINK_PROTOCOL)
      .then((stream) => {
        link.opening = false
        this.adopt(link, stream)
      })
      .catch((e: unknown) => {
        link.opening = false
        this.log.debug({ peer: link.peer, err: String(e) }, 'opening link stream failed')
        this.onDown(link.peer, 'unreachable')
        this.scheduleReconnect(link)
      })
  }

  private scheduleReconnect(link: Link): void {
    if (this.closed || link.reconnectTimer || link.queue.length === 0) return
    const delay = link.backoffMs
    link.backoffMs = Math.min(this.reconnectMaxMs, link.backoffMs * 2)
    link.reconnectTimer = setTimeout(() => {
      link.reconnectTimer = undefined
      if (!link.stream) this.connect(link)
    }, delay)
    link.reconnectTimer.unref()
  }

  private attach(link: Link, stream: Stream): void {
    if (!quietWindowUpdates(stream) && !this.warnedWindowUpdates) {
      this.warnedWindowUpdates = true
      this.log.warn('link streams are not yamux streams of the known shape: every frame gets a window update')
    }
    link.stream = stream
    link.receivedAtMs = performance.now()
    link.sentAtMs = 0
    link.backoffMs = this.reconnectMinMs
    stream.addEventListener('close', () => this.streamGone(link, stream))
    this.read(link, stream)
    this.queueFlush(link)
  }

  /**
   * `stream` closed: the link reconnects. Also called when reading or writing fails, because a
   * stream that closed before it was attached (the other end dropped a duplicate) never fires
   * 'close' here, and the link would otherwise fail every frame on it forever.
   */
  private streamGone(link: Link, stream: Stream): void {
    if (link.stream !== stream) return
    link.stream = undefined
    this.onDown(link.peer, 'closed')
    this.scheduleReconnect(link)
    // Nothing to deliver and no reconnect due: forget the peer, so the map holds only peers we
    // are talking to (the next frame or inbound stream creates the entry again).
    if (
      !link.reconnectTimer &&
      !link.opening &&
      link.queue.length === 0 &&
      this.links.get(link.peer) === link
    ) {
      this.links.delete(link.peer)
    }
  }

  /** Hands every frame arriving on `stream` to `onFrame`; a malformed stream is given up. */
  private read(link: Link, stream: Stream): void {
    const reader = new FrameReader(this.frameBytesMax, (frame) => {
      if (link.stream !== stream) return
      link.receivedAtMs = performance.now()
      if (frame.byteLength === 0) return // a keepalive
      this.counters.framesReceived++
      this.onFrame(link.peer, frame)
    })
    const stop = (e: Error) => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onEnd)
      if (link.stream !== stream) return
      this.log.debug({ peer: link.peer, err: String(e) }, 'link stream ended')
      stream.abort(e)
      this.streamGone(link, stream)
    }
    const onMessage = (event: StreamMessageEvent) => {
      try {
        reader.push(event.data)
      } catch (e) {
        stop(e instanceof Error ? e : new Error(String(e)))
      }
    }
    // The other end will send nothing more: a link is over (it would reconnect with a new stream).
    const onEnd = () => stop(new Error('the remote end closed its side of the link stream'))
    stream.addEventListener('message', onMessage)
    stream.addEventListener('remoteCloseWrite', onEnd)
  }

  /**
   * Writes queued frames in order, one at a time, waiting for the stream to drain when it must —
   * but never for ever: a chaos run once had one direction of a link silent for 35 s after a
   * partition healed, the writer waiting on the drain of a stream the other end no longer read
   * (docs/chaos.md, "Findings"). Past `drainTimeoutMs` the stream is aborted and the link redials.
   */
  private async flush(link: Link): Promise<void> {
    if (link.writing) return
    link.writing = true
    try {
      while (link.stream && link.queue.length > 0) {
        const stream = link.stream
        const frames = takeFrames(link)
        try {
          if (!stream.send(lengthPrefixedAll(frames)))
            await stream.onDrain({ signal: AbortSignal.timeout(this.drainTimeoutMs) })
          link.sentAtMs = performance.now()
          for (const frame of frames) if (frame.byteLength > 0) this.counters.framesSent++
        } catch (e) {
          this.counters.framesDropped += frames.length
          this.log.debug({ peer: link.peer, err: String(e) }, 'link write failed')
          stream.abort(e instanceof Error ? e : new Error(String(e)))
          this.streamGone(link, stream)
          break
        }
      }
    } finally {
      link.writing = false
    }
  }
}

/** An empty frame: keeps a stream alive, never handed to `onFrame`. */
const KEEPALIVE = new Uint8Array(0)

/** Bytes of queued frames joined into one write (a larger single frame goes alone). */
const WRITE_BYTES_MAX = 64 << 10

/** The frames at the head of `link`'s queue that make one write: at least one, then up to WRITE_BYTES_MAX. */
function takeFrames(link: Link): Uint8Array[] {
  let count = 1
  let bytes = link.queue[0]!.byteLength
  while (count < link.queue.length && bytes + link.queue[count]!.byteLength <= WRITE_BYTES_MAX) {
    bytes += link.queue[count]!.byteLength
    count++
  }
  link.queueBytes -= bytes
  // One splice, not a shift per frame: a queue of many small frames is cut in one move.
  return link.queue.splice(0, count)
}
