import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { Host } from './host.js'

/**
 * Keeps dialling the seeds while this node has no connection to any of them. libp2p's bootstrap
 * dials each seed once; a seed that was down at that moment (or a node that lost every peer)
 * would otherwise stay alone forever. Backoff doubles up to `maxDelayMs`.
 */
export class SeedDialer {
  private timer: NodeJS.Timeout | undefined
  private delayMs: number
  private stopped = false
  /** Rounds in which no seed could be reached (metrics, tests). */
  failedRounds = 0

  constructor(
    private readonly host: Host,
    private readonly seeds: string[],
    private readonly log: Logger,
    private readonly minDelayMs = 250,
    private readonly maxDelayMs = 5_000,
  ) {
    this.delayMs = minDelayMs
  }

  start(): void {
    if (this.seeds.length > 0) this.schedule()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = setTimeout(() => void this.round(), this.delayMs)
    this.timer.unref()
  }

  private async round(): Promise<void> {
    const connected = new Set(this.host.getConnections().map((c) => c.remotePeer.toString()))
    const missing = this.seeds.filter((s) => {
      const id = multiaddr(s)
        .getComponents()
        .find((c) => c.name === 'p2p')?.value
      return id !== undefined && id !== this.host.peerId.toString() && !connected.has(id)
    })
    if (missing.length === this.seeds.length && missing.length > 0) {
      const results = await Promise.allSettled(missing.map((s) => this.host.dial(multiaddr(s))))
      const ok = results.some((r) => r.status === 'fulfilled')
      this.delayMs = ok ? this.minDelayMs : Math.min(this.maxDelayMs, this.delayMs * 2)
      if (!ok) {
        this.failedRounds++
        this.log.debug({ seeds: missing }, 'no seed reachable; retrying')
      }
    } else {
      this.delayMs = this.minDelayMs
    }
    this.schedule()
  }
}
