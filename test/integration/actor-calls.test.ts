import { afterEach, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { call, callOnce, createNamespace, deploy } from './calls.js'
import { getJson, ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster

afterEach(async () => {
  await cluster.stop()
})

describe('actor calls across three node processes', () => {
  it('reaches one counter value through every node; stale reads, idempotency keys and bad calls', async () => {
    cluster = new ProcessCluster()
    await cluster.start(3)
    const [a, b, c] = cluster.nodes as [
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
    ]
    await createNamespace(a, 'counters')
    const { hash } = await deploy(b, 'counters', await exampleModule('counter'))
    // The catalog records the deploy, so every node lists it.
    await waitFor(
      async () => {
        const list = (await getJson(`${c.url}/v1/namespaces`)) as {
          namespaces: Array<{ name: string; moduleHash: string; moduleVersion: number }>
        }
        const ns = list.namespaces.find((n) => n.name === 'counters')
        return ns?.moduleHash === hash && ns.moduleVersion === 1
      },
      () => 'the catalog to record the module',
    )

    // 30 increments spread over the three nodes: each reply is the new count, all distinct.
    const replies: number[] = []
    for (let i = 0; i < 30; i++) {
      const via = cluster.nodes[i % 3]!
      replies.push(Number((await call(via, 'counters', 'c1', 'increment')).body))
    }
    expect(replies).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    for (const n of [a, b, c]) expect((await call(n, 'counters', 'c1', 'get')).body).toBe('30')

    // A stale read is served by the nearest replica: with three replicas, the node itself.
    const stale = await waitFor(
      async () => {
        const r = await call(c, 'counters', 'c1', 'get', '', { consistency: 'stale' })
        return r.body === '30' ? r : undefined
      },
      () => 'a stale read on c to catch up to 30',
    )
    expect(stale.servedBy).toBe(c.peer)

    // The same idempotency key runs once, through any node.
    const first = await call(a, 'counters', 'c2', 'increment', '5', { key: 'k-1' })
    const again = await call(b, 'counters', 'c2', 'increment', '5', { key: 'k-1' })
    expect(first.body).toBe('5')
    expect(again.body).toBe('5')
    expect(again.replayed).toBe(true)
    expect((await call(c, 'counters', 'c2', 'get')).body).toBe('5')
    // Several keys on one actor, concurrently: each runs once, and each retry gets its own reply.
    const keyed = await Promise.all(
      ['k-2', 'k-3', 'k-4'].map((k, i) =>
        call(cluster.nodes[i]!, 'counters', 'c2', 'increment', '1', { key: k }),
      ),
    )
    expect(keyed.map((a) => a.body).sort()).toEqual(['6', '7', '8'])
    const retried = await call(c, 'counters', 'c2', 'increment', '1', { key: 'k-3' })
    expect([retried.body, retried.replayed]).toEqual([keyed[1]!.body, true])
    expect((await call(a, 'counters', 'c2', 'get')).body).toBe('8')

    // Clear errors for bad calls.
    expect((await callOnce(a, 'nope', 'x', 'get')).code).toBe('ACTORMESH_NAMESPACE_NOT_FOUND')
    const missing = await callOnce(a, 'counters', 'c1', 'no_such_method')
    expect([missing.status, missing.code]).toEqual([404, 'ACTORMESH_METHOD_NOT_FOUND'])
  }, 180_000)
})
