import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it, onTestFailed } from 'vitest'
import {
  decodeSnapshotMarker,
  encodeSnapshotMarker,
  fetchNamespaceSnapshot,
  type NamespaceSnapshotOptions,
  NamespaceSnapshots,
} from '../../node/namespace-snapshot.js'
import { createHost, type Host } from '../../node/p2p/host.js'
import { PeerLinks } from '../../node/p2p/links.js'
import { Channel } from '../../node/raft-transport.js'
import { Rpc, RpcError } from '../../node/rpc.js'
import { installNamespaceSnapshot, type NamespaceStore, openNamespaceStore } from '../../storage/index.js'
import { waitFor } from './wait.js'

/** Warnings of every peer, printed when a test fails. */
const warnings: string[] = []
const log = pino(
  { level: 'warn' },
  {
    write: (line: string) => {
      if (warnings.length < 200) warnings.push(line)
    },
  },
)
const SEED = Number(process.env.SEED ?? 777)
const NS = 'room'

interface Peer {
  id: string
  host: Host
  links: PeerLinks
  rpc: Rpc
  dir: string
  snapshots: NamespaceSnapshots
  stores: Map<string, NamespaceStore>
}

const peers: Peer[] = []

/** A libp2p peer with RPC and the snapshot flow's handlers, serving the namespaces in its `stores`. */
async function startPeer(seeds: string[] = [], options: NamespaceSnapshotOptions = {}): Promise<Peer> {
  const dir = await mkdtemp(join(tmpdir(), 'am-snapflow-'))
  const host = await createHost({ dataDir: dir, seeds })
  let rpc: Rpc | undefined
  const links = new PeerLinks(
    host,
    (from, frame) => {
      if (frame[0] === Channel.Rpc) rpc?.receive(from, frame.subarray(1))
    },
    log,
  )
  await links.start()
  rpc = new Rpc(links, { defaultTimeoutMs: 10_000 })
  const stores = new Map<string, NamespaceStore>()
  const id = host.peerId.toString()
  const snapshots = new NamespaceSnapshots(id, rpc, (ns) => stores.get(ns), log, {
    retryDelayMsMax: 200,
    // A request lost with a link stream that was being replaced is retried after this, not 60 s.
    openTimeoutMs: 5_000,
    chunkTimeoutMs: 5_000,
    ...options,
  })
  rpc.handle('ns.snap.open', (from, payload, signal) => snapshots.open(from, payload, signal))
  rpc.handle('ns.snap.chunk', (from, payload) => snapshots.chunk(from, payload))
  rpc.handle('ns.snap.close', (from, payload) => snapshots.close(from, payload))
  rpc.handle('ping', async () => 'pong')
  const p = { id, host, links, rpc, dir, snapshots, stores }
  peers.push(p)
  return p
}

/**
 * Waits until `from` gets answers from `to`. Frames written while the two ends settle on one link
 * stream can be lost, and these tests assert single requests, so they start on a settled link.
 */
async function reachable(from: Peer, to: Peer): Promise<void> {
  const started = Date.now()
  for (;;) {
    try {
      await from.rpc.request(to.id, 'ping', null, { timeoutMs: 500 })
      return
    } catch (e) {
      if (Date.now() - started > 30_000) throw e
    }
  }
}

/**
 * One request from `from` to `to`, asked again when it or its answer is lost (as the puller does):
 * the link may still be settling on one stream, and frames written into the losing one are lost.
 * Requests that make the source copy a database get one long attempt instead (asking again would
 * pile copies up on a loaded machine).
 */
async function send(from: Peer, to: Peer, method: string, payload: unknown): Promise<unknown> {
  const copies = method === 'ns.snap.open' && (to.stores.get(NS)?.applied().index ?? -1) >= 0
  const [timeoutMs, attempts] = copies ? [30_000, 1] : [3_000, 5]
  for (let attempt = 1; ; attempt++) {
    try {
      return await from.rpc.request(to.id, method, payload, { timeoutMs })
    } catch (e) {
      if ((e as RpcError).code !== 'ACTORMESH_RPC_TIMEOUT' || attempt >= attempts) throw e
    }
  }
}

/** A small seeded generator (mulberry32). */
function seeded(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) % n) | 0
  }
}

/** Opens `NS` on `peer` with small chunks, and applies `batches` batches of seeded writes. */
async function hostNamespace(peer: Peer, batches: number): Promise<NamespaceStore> {
  const store = await openNamespaceStore({ dataDir: peer.dir, name: NS, snapshotChunkBytesMax: 16 * 1024 })
  peer.stores.set(NS, store)
  const rand = seeded(SEED)
  for (let i = 1; i <= batches; i++) {
    const writes = Array.from({ length: 20 }, (_, j) => ({
      actor: `a${rand(5)}`,
      key: `k${i}-${j}`,
      value: new Uint8Array(200 + rand(2000)).fill(rand(256)),
    }))
    await store.apply({ index: i, term: 1, writes })
  }
  return store
}

/** Files in a peer's namespace directory other than the live database's own. */
async function strayFiles(peer: Peer): Promise<string[]> {
  const names = await readdir(join(peer.dir, 'ns'))
  return names.filter((n) => !/^room\.db(-wal|-shm)?$/.test(n))
}

const codeOf = (e: unknown) => (e as RpcError).code

afterEach(async () => {
  warnings.length = 0
  for (const p of peers.splice(0)) {
    await p.snapshots.closeAll()
    p.rpc.close()
    for (const s of p.stores.values()) await s.close()
    await p.links.close()
    await p.host.stop()
    await rm(p.dir, { recursive: true, force: true })
  }
})

describe('namespace snapshot flow', () => {
  it('pulls a database in chunks from the maker and installs it; the source removes its copy', async () => {
    onTestFailed(() => console.error(`snapshot flow test failed with SEED=${SEED}`))
    const a = await startPeer()
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    await reachable(b, a)
    const source = await hostNamespace(a, 40)
    const target = await openNamespaceStore({ dataDir: b.dir, name: NS })
    b.stores.set(NS, target)
    const marker = encodeSnapshotMarker({ namespace: NS, index: 30, term: 1, maker: a.id })
    expect(decodeSnapshotMarker(marker)).toEqual({ namespace: NS, index: 30, term: 1, maker: a.id })
    const progress: number[] = []
    const retrying = {
      request: (_peer: string, method: string, payload: unknown) => send(b, a, method, payload),
    }
    const pull = await fetchNamespaceSnapshot(retrying, a.id, NS, 30, {
      onProgress: (p) => progress.push(p.bytes),
    })
    expect(pull.meta.index).toBe(40) // the source's applied point, at or above the asked index
    expect(await strayFiles(a)).toHaveLength(1) // the VACUUM INTO copy being served
    const chunks: Uint8Array[] = []
    for await (const c of pull.chunks) chunks.push(c)
    expect(chunks.length).toBeGreaterThan(10)
    expect(chunks.every((c) => c.byteLength <= 16 * 1024)).toBe(true)
    expect(progress[progress.length - 1]).toBe(pull.meta.bytes)
    await waitFor(() => a.snapshots.openCount === 0, 'the source to close the finished session')
    expect(await strayFiles(a)).toEqual([])
    // The same through the state machine's path: maker first, verified, installed.
    await b.snapshots.install(target, {
      meta: { index: 30, term: 1, conf: { voters: [a.id, b.id], learners: [] } },
      data: marker,
    })
    expect(target.applied().index).toBe(40)
    for (const k of ['k1-0', 'k20-7', 'k40-19']) {
      const rows = await Promise.all([0, 1, 2, 3, 4].map((i) => source.get(`a${i}`, k)))
      const copy = await Promise.all([0, 1, 2, 3, 4].map((i) => target.get(`a${i}`, k)))
      expect(copy).toEqual(rows)
      expect(rows.some((r) => r !== undefined)).toBe(true)
    }
    await waitFor(() => a.snapshots.openCount === 0, 'the source to close the installed session')
  })

  it('refuses an unknown session, a chunk out of order, and a session opened by another peer', async () => {
    const a = await startPeer()
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    const c = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    await reachable(b, a)
    await reachable(c, a)
    await hostNamespace(a, 10)
    const bad = await send(b, a, 'ns.snap.chunk', { id: 'nope', n: 0 }).catch((e: unknown) => e)
    expect(codeOf(bad)).toBe('ACTORMESH_SNAPSHOT_SESSION')
    const { id } = (await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 1 })) as { id: string }
    const skipped = await send(b, a, 'ns.snap.chunk', { id, n: 2 }).catch((e: unknown) => e)
    expect(codeOf(skipped)).toBe('ACTORMESH_SNAPSHOT_SESSION')
    expect((skipped as Error).message).toContain('the next chunk is 0')
    const first = (await send(b, a, 'ns.snap.chunk', { id, n: 0 })) as { data: Uint8Array }
    // A retried request (its answer was lost) gets the same chunk again.
    const again = (await send(b, a, 'ns.snap.chunk', { id, n: 0 })) as { data: Uint8Array }
    expect(Buffer.compare(first.data, again.data)).toBe(0)
    const stolen = await send(c, a, 'ns.snap.chunk', { id, n: 1 }).catch((e: unknown) => e)
    expect(codeOf(stolen)).toBe('ACTORMESH_SNAPSHOT_SESSION')
    await send(b, a, 'ns.snap.close', { id })
    expect(a.snapshots.openCount).toBe(0)
    const closed = await send(b, a, 'ns.snap.chunk', { id, n: 1 }).catch((e: unknown) => e)
    expect(codeOf(closed)).toBe('ACTORMESH_SNAPSHOT_SESSION')
    expect(await strayFiles(a)).toEqual([])
  })

  it('drops a session left idle, with its copy', async () => {
    const a = await startPeer([], { snapshotIdleMs: 300 })
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    await reachable(b, a)
    await hostNamespace(a, 10)
    const { id } = (await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 0 })) as { id: string }
    expect(a.snapshots.openCount).toBe(1)
    await waitFor(() => a.snapshots.openCount === 0, 'the idle session to expire')
    const expired = await send(b, a, 'ns.snap.chunk', { id, n: 0 }).catch((e: unknown) => e)
    expect(codeOf(expired)).toBe('ACTORMESH_SNAPSHOT_SESSION')
    expect(await strayFiles(a)).toEqual([])
  })

  it('refuses a namespace it does not host, an index it has not applied, and more than openSnapshotsMax', async () => {
    const a = await startPeer([], { openSnapshotsMax: 2 })
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    await reachable(b, a)
    const missing = await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 0 }).catch((e: unknown) => e)
    expect(codeOf(missing)).toBe('ACTORMESH_SNAPSHOT_SOURCE')
    expect((missing as Error).message).toContain("namespace 'room': not hosted here")
    await hostNamespace(a, 5)
    const behind = await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 6 }).catch((e: unknown) => e)
    expect(codeOf(behind)).toBe('ACTORMESH_SNAPSHOT_SOURCE')
    expect((behind as Error).message).toContain('applied only 5')
    const malformed = await send(b, a, 'ns.snap.open', { ns: NS, minIndex: -1 }).catch((e: unknown) => e)
    expect(codeOf(malformed)).toBe('ACTORMESH_RPC_FAILED')
    await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 0 })
    await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 0 })
    const busy = await send(b, a, 'ns.snap.open', { ns: NS, minIndex: 0 }).catch((e: unknown) => e)
    expect(codeOf(busy)).toBe('ACTORMESH_RPC_BUSY')
    await a.snapshots.closeAll()
    expect(await strayFiles(a)).toEqual([])
  })

  it('falls back to another replica when the maker cannot serve, and stops when aborted', async () => {
    const a = await startPeer()
    const seed = [a.host.getMultiaddrs()[0]!.toString()]
    const b = await startPeer(seed)
    // The maker named in the marker, but it does not host the namespace: it answers that it cannot
    // serve, or (while b's link to it is still being set up) not at all; either way b moves on.
    const c = await startPeer(seed)
    await reachable(b, a)
    await hostNamespace(a, 12)
    const target = await openNamespaceStore({ dataDir: b.dir, name: NS })
    b.stores.set(NS, target)
    const snapshot = (maker: string, voters: string[]) => ({
      meta: { index: 12, term: 1, conf: { voters, learners: [] } },
      data: encodeSnapshotMarker({ namespace: NS, index: 12, term: 1, maker }),
    })
    const ctrl = new AbortController()
    const stuck = b.snapshots.install(target, snapshot(c.id, [c.id, b.id]), { signal: ctrl.signal })
    const reason = new Error('group removed')
    setImmediate(() => ctrl.abort(reason))
    await expect(stuck).rejects.toBe(reason)
    expect(target.applied().index).toBe(0)
    await b.snapshots
      .install(target, snapshot(c.id, [c.id, a.id, b.id]), { signal: AbortSignal.timeout(30_000) })
      .catch((e: unknown) => {
        console.error(warnings.join('')) // onTestFailed runs after afterEach has cleared them
        throw e
      })
    expect(target.applied().index).toBe(12)
  })

  it('asks a chunk again when its request or its answer was lost', async () => {
    const a = await startPeer()
    await hostNamespace(a, 20)
    const target = await openNamespaceStore({ dataDir: join(a.dir, 'copy'), name: NS })
    a.stores.set('copy-target', target) // closed by afterEach
    const lost = new RpcError('ACTORMESH_RPC_TIMEOUT', 'No answer (simulated)')
    const asked: string[] = []
    // A transport that loses chunk 1's answer (the source did serve it) and chunk 2's request.
    const rpc = {
      async request(_peer: string, method: string, payload: unknown): Promise<unknown> {
        const n = (payload as { n?: number }).n
        if (method === 'ns.snap.open') return a.snapshots.open('puller', payload)
        if (method === 'ns.snap.close') return a.snapshots.close('puller', payload)
        asked.push(`${n}`)
        const times = asked.filter((x) => x === `${n}`).length
        if (n === 2 && times === 1) throw lost
        const answer = await a.snapshots.chunk('puller', payload)
        if (n === 1 && times === 1) throw lost
        return answer
      },
    }
    const pull = await fetchNamespaceSnapshot(rpc, a.id, NS, 1)
    expect(pull.meta.bytes).toBeGreaterThan(3 * 16 * 1024)
    expect(await installNamespaceSnapshot(target, pull.meta, pull.chunks)).toBe(true)
    expect(target.applied().index).toBe(20)
    expect(asked.slice(0, 5)).toEqual(['0', '1', '1', '2', '2'])
    await waitFor(() => a.snapshots.openCount === 0, 'the session to be closed')
  })
})
