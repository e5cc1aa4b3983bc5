/**
 * The chaos fault switch (node/chaos.ts): address and table validation, the link hook's drops and
 * delays, and blocks between two real in-process nodes (connection gater + closed connections),
 * lifted again. The CLI refuses `--chaos` on a non-loopback address.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { ChaosFaults, chaosAddressProblem, parseFaultTable } from '../../node/chaos.js'
import { type MeshNode, startMeshNode } from '../../node/mesh-node.js'
import { waitFor } from './wait.js'

const root = join(import.meta.dirname, '..', '..')
const log = pino({ level: 'silent' })

async function peerId(): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** A seeded uniform source (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('chaos addresses', () => {
  it('accepts loopback listen and HTTP addresses only', () => {
    expect(chaosAddressProblem(['/ip4/127.0.0.1/tcp/0', '/ip6/::1/tcp/0'], '127.0.0.1:0')).toBeUndefined()
    expect(chaosAddressProblem(['/dns4/localhost/tcp/7070'], 'localhost:8080')).toBeUndefined()
    expect(chaosAddressProblem(['/ip4/0.0.0.0/tcp/0'], '127.0.0.1:0')).toMatch(
      /'\/ip4\/0.0.0.0\/tcp\/0' is not loopback/,
    )
    expect(chaosAddressProblem(['/ip4/127.0.0.1/tcp/0'], '0.0.0.0:8080')).toMatch(
      /'0.0.0.0:8080' is not loopback/,
    )
    expect(chaosAddressProblem(['/ip4/127.0.0.1/tcp/0'], ':8080')).toMatch(/not loopback/)
    expect(chaosAddressProblem(['/ip4/10.0.0.1/tcp/0'], '[::1]:8080')).toMatch(/10.0.0.1/)
  })

  it('the CLI refuses --chaos with a wildcard listen address, exit 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'am-chaos-'))
    try {
      const proc = spawn(
        join(root, 'node_modules', '.bin', 'node'),
        [
          join(root, 'bin', 'actormesh.js'),
          'start',
          '--chaos',
          '--data',
          dir,
          '--listen',
          '/ip4/0.0.0.0/tcp/0',
          '--http',
          '127.0.0.1:0',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let err = ''
      proc.stderr!.on('data', (d: Buffer) => {
        err += d.toString()
      })
      const code = await new Promise<number | null>((r) => proc.once('exit', r))
      expect(code).toBe(2)
      expect(err).toMatch(/Refusing --chaos: listen address '\/ip4\/0.0.0.0\/tcp\/0' is not loopback/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('fault tables', () => {
  it('parses block, delay and drop, naming a bad value', async () => {
    const a = await peerId()
    const b = await peerId()
    expect(parseFaultTable({ block: [a, a], delay: { [b]: 50 }, drop: { [b]: 0.25 } })).toEqual({
      block: [a],
      delay: { [b]: 50 },
      drop: { [b]: 0.25 },
    })
    expect(parseFaultTable({})).toEqual({ block: [], delay: {}, drop: {} })
    expect(() => parseFaultTable({ cut: [] })).toThrow(/field 'cut'/)
    expect(() => parseFaultTable({ block: ['nope'] })).toThrow(/Bad peer id 'nope'/)
    expect(() => parseFaultTable({ delay: { [a]: -1 } })).toThrow(RangeError)
    expect(() => parseFaultTable({ drop: { [a]: 1.5 } })).toThrow(/1.5 is not in 0..1/)
    expect(() => parseFaultTable([])).toThrow(TypeError)
  })

  it('drops frames to a peer with the table’s probability and passes the others', async () => {
    const a = await peerId()
    const b = await peerId()
    const faults = new ChaosFaults(log, seeded(7))
    await faults.set({ block: [], delay: {}, drop: { [a]: 0.3 } })
    let taken = 0
    for (let i = 0; i < 10_000; i++) if (faults.intercept(a, () => {})) taken++
    expect(taken).toBeGreaterThan(2_700)
    expect(taken).toBeLessThan(3_300)
    expect(faults.intercept(b, () => {})).toBe(false)
    expect(faults.counters.framesDropped).toBe(taken)
  })

  it('holds back frames to a delayed peer and delivers them in order', async () => {
    const a = await peerId()
    const faults = new ChaosFaults(log)
    await faults.set({ block: [], delay: { [a]: 30 }, drop: {} })
    const delivered: number[] = []
    for (let i = 0; i < 5; i++) expect(faults.intercept(a, () => delivered.push(i))).toBe(true)
    expect(delivered).toEqual([])
    await waitFor(() => delivered.length === 5, 'the delayed frames')
    expect(delivered).toEqual([0, 1, 2, 3, 4])
  })
})

describe('blocks between two nodes', () => {
  let dir = ''
  const nodes: MeshNode[] = []
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const put = async (node: MeshNode, table: unknown) => {
    const res = await fetch(`${node.url}/v1/chaos/faults`, { method: 'PUT', body: JSON.stringify(table) })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }
  const stateOf = (node: MeshNode, peer: string) => node.membership.get(peer)?.state

  it('cuts both directions while set, and the nodes find each other again once lifted', async () => {
    dir = await mkdtemp(join(tmpdir(), 'am-chaos-'))
    const start = (name: string, seeds: string[]) =>
      startMeshNode(
        {
          dataDir: join(dir, name),
          listen: ['/ip4/127.0.0.1/tcp/0'],
          seeds,
          http: '127.0.0.1:0',
          chaos: true,
        },
        log,
      )
    const a = await start('a', [])
    nodes.push(a)
    const b = await start('b', [`${a.host.getMultiaddrs()[0]}`])
    nodes.push(b)
    const pa = a.host.peerId.toString()
    const pb = b.host.peerId.toString()
    await waitFor(
      () => stateOf(a, pb) === 'alive' && stateOf(b, pa) === 'alive',
      'the nodes to see each other',
    )

    expect((await put(a, { block: [pb] })).status).toBe(200)
    expect((await put(b, { block: [pa] })).status).toBe(200)
    expect(a.host.getConnections().filter((c) => c.remotePeer.toString() === pb)).toEqual([])
    await waitFor(
      () => stateOf(a, pb) === 'dead' && stateOf(b, pa) === 'dead',
      'each side to declare the other dead',
    )
    // The other side keeps dialling (seed dialer, links): every attempt is refused.
    await expect(a.host.dial(b.host.getMultiaddrs()[0]!)).rejects.toThrow()
    expect(a.host.getConnections().filter((c) => c.remotePeer.toString() === pb)).toEqual([])

    const groups = (await (await fetch(`${a.url}/v1/chaos/groups`)).json()) as {
      groups: Array<{ group: string }>
    }
    expect(groups.groups.map((g) => g.group)).toContain('_system')
    const bad = await put(a, { block: ['x'] })
    expect([bad.status, bad.body.code]).toEqual([400, 'ACTORMESH_BAD_REQUEST'])

    await put(a, {})
    await put(b, {})
    await waitFor(
      () => stateOf(a, pb) === 'alive' && stateOf(b, pa) === 'alive',
      'the nodes to find each other again',
    )
  }, 90_000)
})
