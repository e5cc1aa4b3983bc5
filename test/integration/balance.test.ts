import { afterEach, describe, expect, it } from 'vitest'
import { getJson, ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster

afterEach(async () => {
  await cluster.stop()
})

describe('leader balancing across five node processes', () => {
  it('spreads the leaders of 50 namespaces to within one of the fair share', async () => {
    cluster = new ProcessCluster()
    await cluster.start(5)
    const first = cluster.nodes[0]!
    await waitFor(
      async () =>
        ((await getJson(`${first.url}/v1/status`)) as { system: { voters: string[] } }).system.voters
          .length === 5,
      () => 'five _system voters',
      90_000,
    )
    for (let i = 0; i < 50; i++) {
      await waitFor(
        async () => {
          const res = await fetch(`${first.url}/v1/namespaces`, {
            method: 'POST',
            body: JSON.stringify({ name: `ns${i}` }),
          })
          return res.status === 201 || res.status === 409
        },
        () => `ns${i} to be created`,
      )
    }
    const counts = await waitFor(
      async () => {
        const views = (await getJson(`${first.url}/v1/namespaces`)) as {
          namespaces: Array<{ name: string; leader: string; voters: string[] }>
        }
        // Each node reports the leaders it knows of the groups it hosts; ask every node for its own.
        const led = new Map<string, number>()
        for (const n of cluster.nodes) {
          const own = (await getJson(`${n.url}/v1/namespaces`)) as { namespaces: Array<{ leader: string }> }
          for (const ns of own.namespaces)
            if (ns.leader === n.peer) led.set(n.peer, (led.get(n.peer) ?? 0) + 1)
        }
        const total = [...led.values()].reduce((a, b) => a + b, 0)
        const c = cluster.nodes.map((n) => led.get(n.peer) ?? 0)
        return views.namespaces.length === 50 && total === 50 && c.every((x) => Math.abs(x - 10) <= 1)
          ? c
          : undefined
      },
      () => 'leaders to be spread within one of 10 per node',
      120_000,
    )
    expect(counts.reduce((a, b) => a + b, 0)).toBe(50)
  }, 180_000)
})
