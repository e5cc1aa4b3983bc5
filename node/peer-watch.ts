/**
 * Fast failure detection for leaders. Gossip declares a silent node dead after 1.5 s and Raft
 * followers wait out an election timeout; but when a node's process dies, its TCP connections
 * drop at once. When a link to a peer goes down, the watch pings it once; if that fails too, the
 * peer is gone, and the driver lets the followers of the groups it led campaign within a few
 * ticks (`peerDown(peer, { gone: true })`). A peer that answers the ping is left alone, so a
 * stream that merely closed never costs an election.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import type { MultiRaft } from '../consensus/index.js'
import type { Host } from './p2p/host.js'

export interface PeerWatchOptions {
  /** How long the confirming ping may take before the peer counts as gone. */
  probeTimeoutMs?: number
}

export class PeerWatch {
  private readonly probing = new Set<string>()
  private readonly probeTimeoutMs: number
  private stopped = false
  /** Peers found gone (for tests and metrics). */
  gone = 0

  constructor(
    private readonly host: Host,
    private readonly driver: MultiRaft,
    private readonly log: Logger,
    options: PeerWatchOptions = {},
  ) {
    this.probeTimeoutMs = options.probeTimeoutMs ?? 1_000
  }

  /** The link to `peer` closed or could not be opened. */
  linkDown(peer: string): void {
    if (this.stopped || this.probing.has(peer)) return
    this.probing.add(peer)
    void this.probe(peer).finally(() => this.probing.delete(peer))
  }

  stop(): void {
    this.stopped = true
  }

  private async probe(peer: string): Promise<void> {
    try {
      await this.host.services.ping.ping(peerIdFromString(peer), {
        signal: AbortSignal.timeout(this.probeTimeoutMs),
      })
    } catch (e) {
      if (this.stopped) return
      this.gone++
      this.log.info({ peer, err: String(e) }, 'peer gone: its connection dropped and a ping failed')
      this.driver.peerDown(peer, { gone: true })
    }
  }
}
