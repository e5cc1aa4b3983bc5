import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNamespace } from './calls.js'
import { getJson, type NamespaceView, ProcessCluster, waitFor } from './cluster.js'

/**
 * Removing a node for good (`DELETE /v1/members/{peer}`): it leaves `_system` and the catalog, and
 * its namespace replicas are replaced at once — the replica-dead timeout is set to ten minutes
 * here, so only the removal can explain a replacement within the test.
 */
const cluster = new ProcessCluster()

interface SystemStatus {
  system: { leader: string; voters: string[]; learners: string[] }
}

beforeAll(async () => {
  await cluster.start(4, ['--replica-dead-timeout-ms', '600000'])
  await waitFor(
    async () => {
      const st = (await getJson(`${cluster.nodes[0]!.url}/v1/status`)) as SystemStatus
      return st.system.voters.length + st.system.learners.length === 4
    },
    () => 'four _system members',
    60_000,
  )
}, 180_000)

afterAll(async () => {
  await cluster.stop()
})

async function remove(url: string, peer: string): Promise<{ status: number; body: { code?: string } }> {
  const res = await fetch(`${url}/v1/members/${encodeURIComponent(peer)}`, { method: 'DELETE' })
  return { status: res.status, body: (await res.json()) as { code?: string } }
}

describe('removing a node from the cluster', () => {
  it('takes it out of _system and the catalog, and replaces its replicas without waiting for the dead timeout', async () => {
    const ns = await createNamespace(cluster.nodes[0]!, 'decom', 3)
    const st = (await getJson(`${cluster.nodes[0]!.url}/v1/status`)) as SystemStatus
    const victim = cluster.nodes.find((n) => ns.voters.includes(n.peer) && n.peer !== st.system.leader)!
    const survivor = cluster.nodes.find((n) => n !== victim)!

    expect((await remove(survivor.url, 'not-a-node')).body.code).toBe('ACTORMESH_NODE_NOT_FOUND')
    const leaderNode = cluster.nodes.find((n) => n.peer === st.system.leader)!
    const self = await remove(leaderNode.url, leaderNode.peer)
    expect([self.status, self.body.code]).toEqual([409, 'ACTORMESH_CONFLICT'])

    expect(await cluster.terminate(victim)).toBe(0)
    const removed = await waitFor(
      async () => {
        const r = await remove(survivor.url, victim.peer)
        return r.status === 200 ? r : undefined
      },
      () => 'the removal to be accepted',
    )
    expect(removed.body).toEqual({ removed: victim.peer })

    await waitFor(
      async () => {
        const s = (await getJson(`${survivor.url}/v1/status`)) as SystemStatus
        return ![...s.system.voters, ...s.system.learners].includes(victim.peer)
      },
      () => 'the victim out of _system',
    )
    const catalog = (await getJson(`${survivor.url}/v1/admin/catalog`)) as { nodes: Array<{ peer: string }> }
    expect(catalog.nodes.map((n) => n.peer)).not.toContain(victim.peer)
    // The namespace gets three voters again, on the three nodes left.
    await waitFor(
      async () => {
        const list = (await getJson(`${survivor.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }
        const v = list.namespaces.find((n) => n.name === 'decom')
        return v && !v.voters.includes(victim.peer) && v.voters.length === 3 && v.learners.length === 0
      },
      () => 'decom to have three voters without the removed node',
      90_000,
    )
  }, 240_000)
})
