import { afterEach, describe, expect, it } from 'vitest'
import { type ClusterNode, getJson, type NamespaceView, ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster

afterEach(async () => {
  await cluster.stop()
})

async function namespaces(node: ClusterNode): Promise<NamespaceView[]> {
  return ((await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }).namespaces
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('namespaces across three node processes', () => {
  it('places a new namespace on three replicas, which elect one leader; bad and duplicate requests are refused', async () => {
    cluster = new ProcessCluster()
    await cluster.start(3)
    const peers = cluster.nodes.map((n) => n.peer).sort()
    const via = cluster.nodes[2]!
    // Until all three are _system voters, a create may be placed on fewer nodes: wait for that.
    await waitFor(
      async () => {
        const st = (await getJson(`${via.url}/v1/status`)) as { system: { voters: string[] } }
        return st.system.voters.length === 3
      },
      () => 'three _system voters',
      60_000,
    )
    const created = await waitFor(
      async () => {
        const r = await post(`${via.url}/v1/namespaces`, { name: 'chat' })
        return r.status === 201 ? r.body : undefined
      },
      () => 'the namespace to be created (retried while no _system leader is known)',
    )
    expect([...(created.voters as string[])].sort()).toEqual(peers)

    const leader = await waitFor(
      async () => {
        const views = await Promise.all(
          cluster.nodes.map(async (n) => (await namespaces(n)).find((ns) => ns.name === 'chat')),
        )
        const l = views[0]?.leader
        return l && views.every((v) => v?.leader === l && [...v.voters].sort().join() === peers.join())
          ? l
          : undefined
      },
      () => 'every node to host chat with one agreed leader',
      60_000,
    )
    expect(peers).toContain(leader)

    expect((await post(`${cluster.nodes[0]!.url}/v1/namespaces`, { name: 'chat' })).status).toBe(409)
    const bad = await post(`${cluster.nodes[0]!.url}/v1/namespaces`, { name: '../etc' })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('ACTORMESH_BAD_REQUEST')
  }, 180_000)
})
