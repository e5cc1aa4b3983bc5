/**
 * Namespace snapshots end to end, in one process: three real mesh nodes (libp2p on loopback, real
 * raft.db and namespace LibSQL files) compact a namespace's log every 50 entries; a replica that
 * was down while hundreds of entries committed comes back behind the leader's compacted log and
 * must catch up by pulling the namespace database over libp2p.
 */

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createClient } from '@libsql/client'
import pino from 'pino'
import { afterEach, describe, expect, it, onTestFailed } from 'vitest'
import type { MeshNode } from '../../node/mesh-node.js'
import { startMeshNode } from '../../node/mesh-node.js'
import { encodeNamespaceEntry } from '../../node/namespace-group.js'
import { waitFor } from './wait.js'

const SEED = Number(process.env.SEED ?? 4711)
const NS = 'snaps'
const VALUE_BYTES = 16 * 1024

/** Log records of every node, for the figures the install logs. */
const records: Array<Record<string, unknown>> = []
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line))
    done()
  },
})
const log = pino({ level: 'info' }, sink)

let root = ''
const running = new Set<MeshNode>()

async function start(dir: string, seeds: string[], replicaDeadTimeoutMs = 600_000): Promise<MeshNode> {
  const node = await startMeshNode(
    {
      dataDir: join(root, dir),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      seeds,
      http: '127.0.0.1:0',
      snapshotEveryEntries: 50,
      replicaDeadTimeoutMs,
    },
    log.child({ node: dir }),
  )
  running.add(node)
  return node
}

async function stop(node: MeshNode): Promise<void> {
  running.delete(node)
  await node.stop()
}

afterEach(async () => {
  for (const n of [...running]) await stop(n)
  if (root) await rm(root, { recursive: true, force: true })
  root = ''
  records.length = 0
})

/** The value of key `k<i>`: seeded bytes, so every replica must hold exactly these. */
function seededValue(i: number): Uint8Array {
  const v = new Uint8Array(VALUE_BYTES)
  let x = (SEED ^ Math.imul(i, 0x9e3779b1)) >>> 0
  for (let j = 0; j < v.length; j++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0
    v[j] = x >>> 24
  }
  return v
}

/** On failure: the seed, each running node's view of the namespace, and the last warnings logged. */
function report(): void {
  for (const n of running) {
    const m = n.system.hosted(NS)
    const view = m
      ? { leader: n.driver.leader(NS), applied: m.store.applied().index, snapshots: m.snapshotStats() }
      : 'not hosted'
    console.error(`${peerOf(n)}: ${JSON.stringify(view)}`)
  }
  for (const r of records.filter((r) => (r.level as number) >= 40 || r.component === 'snapshots').slice(-60))
    console.error(JSON.stringify(r).slice(0, 400))
}

/** `waitFor` with a generous default (the machine is shared), reporting the nodes' state when it fails. */
async function until(cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  try {
    await waitFor(cond, what, timeoutMs)
  } catch (e) {
    report()
    throw e
  }
}

const peerOf = (n: MeshNode) => n.host.peerId.toString()
const addrOf = (n: MeshNode) => n.host.getMultiaddrs()[0]!.toString()

/** Proposes entries `from..to` (one chain: epoch e1, seq = i) on the leader, in order, `batch` at a time. */
async function write(leader: MeshNode, from: number, to: number, size = 25): Promise<void> {
  for (let lo = from; lo <= to; lo += size) {
    const batch: Promise<number>[] = []
    for (let i = lo; i <= Math.min(to, lo + size - 1); i++) {
      const entry = {
        epoch: 'e1',
        seq: i,
        base: 0,
        writes: [{ actor: 'a', key: `k${i}`, value: seededValue(i) }],
      }
      batch.push(leader.driver.propose(NS, encodeNamespaceEntry(entry)))
    }
    await Promise.all(batch)
  }
}

async function expectKeys(node: MeshNode, upTo: number): Promise<void> {
  const store = node.system.hosted(NS)!.store
  for (let i = 1; i <= upTo; i++) {
    const got = await store.get('a', `k${i}`)
    expect(got && Buffer.compare(got, seededValue(i)), `key k${i}`).toBe(0)
  }
}

/** The index of `group`'s snapshot in a node's raft.db, read through a second connection. */
async function raftSnapshotIndex(dataDir: string, group: string): Promise<number> {
  const client = createClient({ url: `file:${join(dataDir, 'raft.db')}` })
  try {
    const rs = await client.execute({ sql: 'SELECT idx FROM raft_snapshot WHERE grp = ?', args: [group] })
    return rs.rows.length > 0 ? Number(rs.rows[0]![0]) : 0
  } finally {
    client.close()
  }
}

describe('namespace snapshots over libp2p', () => {
  it('a replica that was down catches up from a snapshot pulled from the leader, then keeps applying', async () => {
    onTestFailed(() => console.error(`namespace snapshot test failed with SEED=${SEED}`))
    root = await mkdtemp(join(tmpdir(), 'am-nssnap-'))
    // Repair must not replace the stopped replica: this test brings it back itself.
    const a = await start('a', [])
    const b = await start('b', [addrOf(a)])
    const c = await start('c', [addrOf(a)])
    const nodes = [a, b, c]
    await until(() => {
      const st = a.system.status()
      return st.voters.length + st.learners.length === 3 && a.membership.alive().length === 2
    }, 'b and c to join _system')
    await a.system.createNamespace(NS, 3)
    await until(
      () =>
        nodes.every((n) => n.system.hosted(NS) && n.driver.leader(NS) !== '') &&
        new Set(nodes.map((n) => n.driver.leader(NS))).size === 1,
      'every node to host the namespace with one leader',
    )
    const leader = nodes.find((n) => n.driver.leader(NS) === peerOf(n))!
    // Stop a follower that is not the seed, so it can come back through the seed.
    const down = nodes.find((n) => n !== leader && n !== a) ?? nodes.find((n) => n !== leader)!
    const downDir = join(root, ['a', 'b', 'c'][nodes.indexOf(down)]!)
    const seed = addrOf(down === a ? b : a)
    const behind = down.system.hosted(NS)!.store.applied().index
    await stop(down)

    // One entry per append: the leader's link keeps the appends it sends to the stopped node queued
    // and delivers them when it is back, so only what lies beyond its window of 256 unacknowledged
    // appends (maxInflightAppends) is never sent — and that is compacted away by then.
    await write(leader, 1, 300, 1)
    const machine = leader.system.hosted(NS)!
    expect(machine.snapshotStats().made).toBeGreaterThanOrEqual(5)
    const leaderDir = join(root, ['a', 'b', 'c'][nodes.indexOf(leader)]!)
    const compacted = await raftSnapshotIndex(leaderDir, NS)
    expect(compacted).toBeGreaterThan(250)
    expect(compacted).toBeGreaterThan(behind)

    const back = await start(downDir.split('/').pop()!, [seed])
    expect(peerOf(back)).toBe(peerOf(down))
    const target = () => machine.store.applied().index
    await until(
      () => {
        const m = back.system.hosted(NS)
        return m !== undefined && m.snapshotStats().installed > 0 && m.store.applied().index === target()
      },
      'the restarted replica to reach the leader by snapshot',
      60_000,
    )
    const replica = back.system.hosted(NS)!
    await expectKeys(back, 300)

    // The chain point came with the database: the next entries continue it and apply.
    await write(leader, 301, 320)
    await until(
      () => replica.store.applied().index === target(),
      'the restarted replica to apply entries after the install',
    )
    await expectKeys(back, 320)

    const installs = records.filter((r) => r.msg === 'installed namespace snapshot')
    expect(installs.length).toBeGreaterThanOrEqual(1)
    for (const r of installs)
      console.log(
        `namespace snapshot install: ${r.bytes} bytes in ${r.ms} ms (${r.mbPerS} MB/s) from ${r.peer}`,
      )
  }, 180_000)

  it('a replacement replica is added by repair and catches up from a snapshot', async () => {
    onTestFailed(() => console.error(`namespace snapshot test failed with SEED=${SEED}`))
    root = await mkdtemp(join(tmpdir(), 'am-nssnap-'))
    const a = await start('a', [], 2_000)
    const rest = []
    for (const dir of ['b', 'c', 'd']) rest.push(await start(dir, [addrOf(a)], 2_000))
    const nodes = [a, ...rest]
    await until(() => {
      const st = a.system.status()
      return st.voters.length + st.learners.length === 4 && a.membership.alive().length === 3
    }, 'b, c and d to join _system')
    const created = await a.system.createNamespace(NS, 3)
    const replicas = nodes.filter((n) => created.voters.includes(peerOf(n)))
    expect(replicas).toHaveLength(3)
    await until(
      () =>
        replicas.every((n) => n.system.hosted(NS) && n.driver.leader(NS) !== '') &&
        new Set(replicas.map((n) => n.driver.leader(NS))).size === 1,
      'the replicas to host the namespace with one leader',
    )
    const leader = replicas.find((n) => n.driver.leader(NS) === peerOf(n))!
    await write(leader, 1, 300)
    const machine = leader.system.hosted(NS)!
    expect(machine.snapshotStats().made).toBeGreaterThanOrEqual(5)
    // A replica that neither leads the namespace nor runs repair (a leads _system) goes down for good.
    const dead = replicas.find((n) => n !== leader && n !== a)!
    const spare = nodes.find((n) => !replicas.includes(n))!
    await stop(dead)
    await until(
      () => {
        const m = spare.system.hosted(NS)
        return (
          m !== undefined &&
          m.snapshotStats().installed > 0 &&
          m.store.applied().index === machine.store.applied().index
        )
      },
      'repair to add a learner on the spare node, caught up by snapshot',
      90_000,
    )
    await expectKeys(spare, 300)
    await until(
      () => {
        const ns = a.system.listNamespaces().find((n) => n.name === NS)
        return !!ns?.voters.includes(peerOf(spare)) && !ns.voters.includes(peerOf(dead))
      },
      'repair to promote the new replica and remove the dead one',
      60_000,
    )
    await write(leader, 301, 310)
    await until(
      () => spare.system.hosted(NS)!.store.applied().index === machine.store.applied().index,
      'the new replica to apply entries after the install',
    )
    await expectKeys(spare, 310)
  }, 240_000)
})
