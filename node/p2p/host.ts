import { readFile } from 'node:fs/promises'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import type { Registry } from 'prom-client'
import { joinedWritesTcp } from './joined-writes.js'
import { keyedNoiseCrypto } from './noise-crypto.js'
import { loadOrCreatePeerKey } from './peer-key.js'

/** The libp2p services every ActorMesh node runs. */
export type HostServices = {
  identify: ReturnType<ReturnType<typeof identify>>
  ping: ReturnType<ReturnType<typeof ping>>
  pubsub: ReturnType<ReturnType<typeof gossipsub>>
}

/** A started libp2p node with ActorMesh's services. */
export type Host = Libp2p<HostServices>

export interface HostOptions {
  /** The node's data directory: the peer key lives in it. */
  dataDir: string
  /** Multiaddrs to listen on; default one loopback TCP port chosen by the OS. */
  listen?: string[]
  /** Seed multiaddrs, each ending in `/p2p/<peer id>`. */
  seeds?: string[]
  /** A pre-shared cluster key file (`@libp2p/pnet` format): only nodes holding it can connect. */
  clusterKeyFile?: string
  /** Decides which peers may connect (chaos tests block peers with it). */
  connectionGater?: ConnectionGater
  /** Open connections kept at most (a cluster rarely needs more than its member count). */
  connectionsMax?: number
  /** Where libp2p's own metrics (connections, streams, protocol traffic) are registered. */
  metricsRegistry?: Registry
}

/**
 * Creates and starts the libp2p host: TCP, Noise, Yamux, identify, ping, gossipsub, and the seeds
 * as bootstrap peers. With a cluster key, every connection is wrapped in the private-network
 * protector, so a node without the key cannot even complete a handshake.
 */
export async function createHost(init: HostOptions, options?: { signal?: AbortSignal }): Promise<Host> {
  options?.signal?.throwIfAborted()
  const privateKey = await loadOrCreatePeerKey(init.dataDir, options)
  const seeds = init.seeds ?? []
  for (const seed of seeds) {
    if (!seed.includes('/p2p/'))
      throw new TypeError(`Cannot use seed '${seed}': it must end in /p2p/<peer id>`)
  }
  const psk = init.clusterKeyFile ? new Uint8Array(await readFile(init.clusterKeyFile)) : undefined
  return createLibp2p({
    privateKey,
    addresses: { listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [joinedWritesTcp()],
    connectionEncrypters: [noise({ crypto: keyedNoiseCrypto })],
    streamMuxers: [yamux()],
    ...(psk ? { connectionProtector: preSharedKey({ psk }) } : {}),
    ...(init.connectionGater ? { connectionGater: init.connectionGater } : {}),
    ...(init.metricsRegistry ? { metrics: prometheusMetrics({ registry: init.metricsRegistry }) } : {}),
    // Every node of a laptop cluster dials from 127.0.0.1: libp2p's default of 5 inbound
    // connections per second per host would turn the 6th node away.
    connectionManager: {
      maxConnections: init.connectionsMax ?? 300,
      inboundConnectionThreshold: 1_000,
      maxIncomingPendingConnections: 100,
    },
    peerDiscovery: seeds.length > 0 ? [bootstrap({ list: seeds, timeout: 10 })] : [],
    services: {
      identify: identify(),
      ping: ping(),
      // Every node dials every member, and its own heartbeats are flood-published to all of them:
      // no IHAVE/IWANT gossip is needed, and gossip handed out old heartbeats late (a stopped node
      // looked alive up to 1.6 s longer: dead_ms 3,063-4,060). A node that just connected is
      // introduced to the other members by the next heartbeat instead (node/membership.ts). The
      // gossipsub heartbeat grafts a new peer into the mesh; 500 ms keeps membership.join_ms
      // <= 2,000 (it was 250 ms, a steady cost on every idle node).
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        heartbeatInterval: 500,
        Dlazy: 0,
        gossipFactor: 0,
      }),
    },
  })
}
