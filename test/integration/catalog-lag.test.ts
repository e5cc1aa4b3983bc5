import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callOnce } from './calls.js'
import { getJson, ProcessCluster, waitFor } from './cluster.js'

/**
 * A node whose copy of the catalog lags (frames to it are held back 300 ms by the chaos fault
 * table, less than an election timeout) must not answer "namespace not found" for a namespace created a moment ago elsewhere.
 */
const cluster = new ProcessCluster()
const DELAY_MS = 300

beforeAll(async () => {
  await cluster.start(3, ['--chaos'])
  await waitFor(
    async () => {
      const st = (await getJson(`${cluster.nodes[0]!.url}/v1/status`)) as { system: { voters: string[] } }
      return st.system.voters.length === 3
    },
    () => 'three _system voters',
    60_000,
  )
}, 120_000)

afterAll(async () => {
  await cluster.stop()
})

async function setFaults(url: string, table: unknown): Promise<void> {
  const res = await fetch(`${url}/v1/chaos/faults`, { method: 'PUT', body: JSON.stringify(table) })
  expect(res.status, await res.text()).toBe(200)
}

describe('a node behind on the catalog', () => {
  it('brings its catalog up to date before it says a namespace does not exist', async () => {
    const st = (await getJson(`${cluster.nodes[0]!.url}/v1/status`)) as { system: { leader: string } }
    const lagging = cluster.nodes.find((n) => n.peer !== st.system.leader)!
    const others = cluster.nodes.filter((n) => n !== lagging)
    for (const n of others)
      await setFaults(n.url, { block: [], delay: { [lagging.peer]: DELAY_MS }, drop: {} })
    try {
      const created = await fetch(`${others[0]!.url}/v1/namespaces`, {
        method: 'POST',
        body: JSON.stringify({ name: 'fresh', replicationFactor: 3 }),
      })
      expect(created.status, await created.text()).toBe(201)
      // The lagging node has not applied the create yet; its answer must come from the current
      // catalog: the namespace exists — its group has no leader yet, or no module — never 404.
      const answer = await callOnce(lagging, 'fresh', 'a1', 'get', '', { timeoutMs: 15_000 })
      expect(['ACTORMESH_NAMESPACE_NOT_DEPLOYED', 'ACTORMESH_NO_LEADER'], answer.body).toContain(answer.code)
      if (answer.code === 'ACTORMESH_NO_LEADER') expect(answer.body).toContain("'fresh'")
      // A name nobody created is still a 404.
      const missing = await callOnce(lagging, 'never-made', 'a1', 'get')
      expect(missing.status, missing.body).toBe(404)
    } finally {
      for (const n of others) await setFaults(n.url, { block: [], delay: {}, drop: {} })
    }
  })
})
