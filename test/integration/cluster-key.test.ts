import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { generateKey } from '@libp2p/pnet'
import { afterEach, describe, expect, it } from 'vitest'
import { type ClusterNode, getJson, ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster
let keyDir = ''

afterEach(async () => {
  await cluster.stop()
  if (keyDir) await rm(keyDir, { recursive: true, force: true })
})

/** Writes a new pre-shared key in the `@libp2p/pnet` text format and returns its path. */
async function writeClusterKey(name: string): Promise<string> {
  const key = new Uint8Array(95)
  generateKey(key)
  const path = join(keyDir, name)
  await writeFile(path, key)
  return path
}

interface StatusView {
  system: { joined: boolean; voters: string[]; learners: string[] }
}

async function status(node: ClusterNode): Promise<StatusView> {
  return (await getJson(`${node.url}/v1/status`)) as StatusView
}

describe('a cluster key over node processes', () => {
  it('keeps a node with another key, and one with none, out of membership and _system', async () => {
    keyDir = await mkdtemp(join(tmpdir(), 'am-key-'))
    const key = await writeClusterKey('cluster.key')
    const otherKey = await writeClusterKey('other.key')
    cluster = new ProcessCluster()
    await cluster.start(2, ['--cluster-key', key])
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!]
    const root = dirname(a.dataDir)
    const wrongKey = await cluster.startNode(join(root, 'wrong-key'), [a.addr], ['--cluster-key', otherKey])
    const noKey = await cluster.startNode(join(root, 'no-key'), [a.addr])
    const strangers = [wrongKey.peer, noKey.peer]

    // The positive event first: the two key holders see each other alive and both vote in _system.
    await waitFor(
      async () => {
        for (const [n, other] of [
          [a, b],
          [b, a],
        ] as const) {
          const alive = (await cluster.members(n)).filter((m) => m.state === 'alive').map((m) => m.peer)
          if (!alive.includes(other.peer)) return false
          const voters = (await status(n)).system.voters
          if (!voters.includes(a.peer) || !voters.includes(b.peer)) return false
        }
        return true
      },
      () => 'the two nodes holding the key to see each other and share _system',
      90_000,
    )

    // Then the negative, over a bounded window while the strangers keep dialling their seed.
    let checks = 0
    const deadline = Date.now() + 6_000
    while (Date.now() < deadline) {
      for (const n of [a, b]) {
        const seen = (await cluster.members(n)).map((m) => m.peer)
        expect(seen).toEqual([n === a ? b.peer : a.peer])
        const st = (await status(n)).system
        expect([...st.voters, ...st.learners].filter((p) => strangers.includes(p))).toEqual([])
      }
      for (const s of [wrongKey, noKey]) {
        expect(await cluster.members(s)).toEqual([])
        expect((await status(s)).system.joined).toBe(false)
      }
      checks++
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(checks).toBeGreaterThan(3)
    // The strangers are alive and serving the whole time: they were refused, not crashed.
    for (const s of [wrongKey, noKey]) expect(s.proc.exitCode).toBeNull()
  }, 180_000)
})
