import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Host } from './host.js'

export interface RttOptions {
  /** Time between the starts of two ping rounds. */
  intervalMs?: number
  /** A ping not answered within this time counts as failed. */
  timeoutMs?: number
  /** Pings in flight at most during a round. */
  pingsInFlightMax?: number
  /** Weight of a new sample in the smoothed RTT (EWMA), in (0, 1]. */
  alpha?: number
  /** Peers remembered at most; beyond it the oldest entry is forgotten. */
  peersMax?: number
  /** Monotonic clock in milliseconds (tests pass a fake one). */
  now?: () => number
}

/** Counters the metrics endpoint exposes. */
export interface RttCounters {
  pings: number
  pingFailures: number
  rounds: number
}

interface RttEntry {
  /** Smoothed round-trip time, in milliseconds; undefined while no ping was answered. */
  rttMs: number | undefined
  /** Failed pings since the last answered one. */
  failures: number
}

/**
 * Round-trip times to connected peers, measured continuously with libp2p's ping protocol and
 * smoothed (EWMA), so that routing can prefer the nearest replica. A ping's time is taken with the
 * monotonic clock from the moment its stream is open (libp2p's `connection:opened-stream` progress
 * event) to the echo: libp2p's own figure comes from `Date.now()` in whole milliseconds and reads
 * 0 or 1 on a LAN, and timing the whole call would add a protocol-negotiation round trip and a
 * peer-store write (about 5 ms against 1 ms on loopback).
 * Entries live while the peer is connected: a disconnect forgets the peer, so memory follows the
 * connection count (and `peersMax` bounds it regardless).
 */
export class RttTable {
  readonly counters: RttCounters = { pings: 0, pingFailures: 0, rounds: 0 }
  private readonly entries = new Map<string, RttEntry>()
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly pingsInFlightMax: number
  private readonly alpha: number
  private readonly peersMax: number
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private shutdown: AbortController | undefined
  private round: Promise<void> | undefined
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.entries.delete(evt.detail.toString())
  }

  constructor(
    private readonly host: Host,
    private readonly log: Logger,
    options: RttOptions = {},
  ) {
    // Each ping opens a libp2p stream (protocol negotiation included): every 5 s, not 2, keeps an
    // idle node's CPU down; round-trip times on a LAN change more slowly than that.
    this.intervalMs = options.intervalMs ?? 5_000
    this.timeoutMs = options.timeoutMs ?? 2_000
    this.pingsInFlightMax = options.pingsInFlightMax ?? 8
    this.alpha = options.alpha ?? 0.3
    this.peersMax = options.peersMax ?? 1_000
    this.now = options.now ?? (() => performance.now())
    if (!(this.intervalMs > 0)) throw new RangeError(`Cannot measure RTTs every ${this.intervalMs} ms`)
    if (!(this.timeoutMs > 0)) throw new RangeError(`Cannot time pings out after ${this.timeoutMs} ms`)
    if (!(Number.isInteger(this.pingsInFlightMax) && this.pingsInFlightMax >= 1))
      throw new RangeError(`Cannot keep ${this.pingsInFlightMax} pings in flight`)
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new RangeError(`Cannot smooth with alpha ${this.alpha}`)
    if (!(Number.isInteger(this.peersMax) && this.peersMax >= 1))
      throw new RangeError(`Cannot remember ${this.peersMax} peers`)
  }

  /** Pings every connected peer now and then every `intervalMs`; a second call does nothing. */
  start(): void {
    if (this.shutdown !== undefined) return
    this.shutdown = new AbortController()
    this.host.addEventListener('peer:disconnect', this.onDisconnect)
    this.schedule(0)
  }

  /**
   * Stops the rounds, aborts the pings in flight and resolves once the current round has settled,
   * leaving no timer behind. Safe to call twice, and after the host stopped.
   */
  async stop(): Promise<void> {
    const shutdown = this.shutdown
    if (shutdown === undefined) return
    this.shutdown = undefined
    clearTimeout(this.timer)
    this.timer = undefined
    shutdown.abort()
    this.host.removeEventListener('peer:disconnect', this.onDisconnect)
    await this.round
  }

  /** The smoothed RTT to `peer` in milliseconds, if one was measured while it is connected. */
  rttMs(peer: string): number | undefined {
    return this.entries.get(peer)?.rttMs
  }

  /** Failed pings to `peer` since its last answered one (0 for an unknown peer). */
  failures(peer: string): number {
    return this.entries.get(peer)?.failures ?? 0
  }

  /** Every known smoothed RTT, by peer id (for /v1/status). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [peer, e] of this.entries) if (e.rttMs !== undefined) out[peer] = e.rttMs
    return out
  }

  /** Adds one measurement of `peer`'s RTT (a ping, or a round trip timed elsewhere). */
  observe(peer: string, ms: number): void {
    if (!(Number.isFinite(ms) && ms >= 0))
      throw new RangeError(`Cannot record an RTT of ${ms} ms for '${peer}'`)
    const e = this.entries.get(peer)
    if (e?.rttMs === undefined) {
      this.remember(peer, { rttMs: ms, failures: 0 })
      return
    }
    e.rttMs += this.alpha * (ms - e.rttMs)
    e.failures = 0
  }

  /**
   * The nearest of `peers`: `self` when it is among them (local costs nothing), else the one with
   * the smallest known RTT; peers never measured come last, and equals keep their given order.
   * Undefined only for an empty list.
   */
  nearest(peers: readonly string[], self: string): string | undefined {
    if (peers.includes(self)) return self
    let best: string | undefined
    let bestMs = Number.POSITIVE_INFINITY
    for (const peer of peers) {
      const ms = this.entries.get(peer)?.rttMs ?? Number.POSITIVE_INFINITY
      if (best === undefined || ms < bestMs) {
        best = peer
        bestMs = ms
      }
    }
    return best
  }

  private remember(peer: string, entry: RttEntry): void {
    this.entries.delete(peer)
    this.entries.set(peer, entry)
    if (this.entries.size > this.peersMax) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
  }

  /** Arms the next round; rounds never overlap, the next one is armed when one settles. */
  private schedule(delayMs: number): void {
    const shutdown = this.shutdown
    if (shutdown === undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      const started = this.now()
      this.round = this.pingAll(shutdown.signal)
        .catch((err: unknown) => this.log.warn({ err }, 'RTT round failed'))
        .finally(() => {
          this.round = undefined
          // A stop (and maybe a new start) happened meanwhile: that start armed its own round.
          if (this.shutdown === shutdown) this.schedule(Math.max(0, this.intervalMs - (this.now() - started)))
        })
    }, delayMs)
    this.timer.unref()
  }

  /** One round: pings every connected peer, at most `pingsInFlightMax` at once. */
  private async pingAll(signal: AbortSignal): Promise<void> {
    const peers = this.host.getPeers()
    const connected = new Set(peers.map((p) => p.toString()))
    // A disconnect event can be missed (e.g. the table started after it), so a round also forgets
    // every peer that is no longer connected.
    for (const peer of this.entries.keys()) if (!connected.has(peer)) this.entries.delete(peer)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < peers.length && !signal.aborted) await this.pingOne(peers[next++]!, signal)
    }
    await Promise.all(Array.from({ length: Math.min(this.pingsInFlightMax, peers.length) }, worker))
    this.counters.rounds++
  }

  private async pingOne(peer: PeerId, shutdown: AbortSignal): Promise<void> {
    const id = peer.toString()
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(new Error(`Ping to '${id}' timed out`)), this.timeoutMs)
    timer.unref()
    let opened: number | undefined
    try {
      this.counters.pings++
      const reportedMs = await this.host.services.ping.ping(peer, {
        signal: AbortSignal.any([timeout.signal, shutdown]),
        onProgress: (evt) => {
          if (evt.type === 'connection:opened-stream') opened = this.now()
        },
      })
      // Should a libp2p version stop reporting the open stream, its own coarse figure still orders.
      const ms = opened === undefined ? reportedMs : this.now() - opened
      // The peer may have disconnected while the ping was in flight: do not bring it back.
      if (!shutdown.aborted && this.host.getConnections(peer).length > 0) this.observe(id, ms)
    } catch (err) {
      if (shutdown.aborted) return
      this.counters.pingFailures++
      const e = this.entries.get(id)
      if (e !== undefined) e.failures++
      else if (this.host.getConnections(peer).length > 0) this.remember(id, { rttMs: undefined, failures: 1 })
      this.log.debug({ peer: id, err }, 'ping failed')
    } finally {
      clearTimeout(timer)
    }
  }
}
