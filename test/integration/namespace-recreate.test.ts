/**
 * A node that is down while a namespace it replicates is deleted and created again under the same
 * name: when it returns, it must not run its old replica (the old state, and an old Raft log with
 * its terms) as the new namespace's.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { call, callOnce, createNamespace, deploy } from './calls.js'
import { type ClusterNode, getJson, type NamespaceView, ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster | undefined

afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

/** A stale read of x's count served by `node` itself, or undefined while another node serves it. */
async function servedBy(node: ClusterNode): Promise<string | undefined> {
  const r = await callOnce(node, 'again', 'x', 'get', '', { consistency: 'stale' })
  return r.status === 200 && r.servedBy === node.peer ? r.body : undefined
}

async function replicas(node: ClusterNode): Promise<string[]> {
  const list = (await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }
  const ns = list.namespaces.find((n) => n.name === 'again')
  return ns ? [...ns.voters, ...ns.learners] : []
}

describe('a namespace deleted and created again while a replica is down', () => {
  it('the returning node drops its old replica and serves the new namespace', async () => {
    cluster = new ProcessCluster()
    await cluster.start(3)
    const [a, , c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode]
    await createNamespace(a, 'again', 3)
    const wasm = await exampleModule('counter')
    await deploy(a, 'again', wasm)
    expect((await call(a, 'again', 'x', 'increment', '41')).body).toBe('41')
    await waitFor(
      async () => (await servedBy(c)) === '41',
      () => 'c to serve its replica of the first namespace',
    )
    const marker = join(c.dataDir, 'ns', 'again.db.created')
    const first = Number(await readFile(marker, 'utf8'))
    expect(first).toBeGreaterThan(0)

    await cluster.kill(c)
    const deleted = await waitFor(
      async () => {
        const res = await fetch(`${a.url}/v1/ns/again`, {
          method: 'DELETE',
          signal: AbortSignal.timeout(15_000),
        })
        return res.status === 503 ? undefined : res.status
      },
      () => 'the delete',
      60_000,
    )
    expect(deleted).toBe(200)
    await waitFor(
      async () => {
        const res = await fetch(`${a.url}/v1/ns`, {
          method: 'POST',
          body: JSON.stringify({ name: 'again', replicationFactor: 3 }),
          signal: AbortSignal.timeout(15_000),
        })
        return res.status === 201 ? true : undefined
      },
      () => 'the namespace to be created again',
      60_000,
    )
    await deploy(a, 'again', wasm)
    expect((await call(a, 'again', 'x', 'increment', '5')).body).toBe('5')

    // Back on its old files: until it serves x itself, every answer it serves must be the new count.
    const back = await cluster.startNode(c.dataDir, [a.addr])
    const seen = new Map<string, number>()
    await waitFor(
      async () => {
        const got = await servedBy(back)
        if (got !== undefined) seen.set(got, (seen.get(got) ?? 0) + 1)
        return got === '5'
      },
      () =>
        `the returned node to serve the new namespace's x (it served, value x times: ${JSON.stringify([...seen])})`,
      120_000,
    )
    expect([...seen.keys()]).toEqual(['5'])
    expect(await replicas(a)).toContain(back.peer)
    expect(Number(await readFile(marker, 'utf8'))).toBeGreaterThan(first)
    // And it follows the new namespace's log from here on.
    expect((await call(a, 'again', 'x', 'increment', '1')).body).toBe('6')
    await waitFor(
      async () => (await servedBy(back)) === '6',
      () => 'the returned node to apply the next increment',
    )
  }, 240_000)
})
