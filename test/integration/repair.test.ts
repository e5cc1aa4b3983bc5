import { afterEach, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { call, deploy } from './calls.js'
import { type ClusterNode, getJson, type NamespaceView, ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster

afterEach(async () => {
  await cluster.stop()
})

async function chat(node: ClusterNode): Promise<NamespaceView | undefined> {
  return ((await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }).namespaces.find(
    (n) => n.name === 'chat',
  )
}

describe('replica repair across four node processes', () => {
  it('replaces a replica whose node stays dead: learner on the spare node, caught up from a snapshot, promoted, dead one removed', async () => {
    cluster = new ProcessCluster()
    // Logs compact every 20 entries keeping none, so the new replica can only catch up by snapshot.
    await cluster.start(4, ['--replica-dead-timeout-ms', '2000', '--snapshot-every-entries', '20'])
    const first = cluster.nodes[0]!
    await waitFor(
      async () =>
        ((await getJson(`${first.url}/v1/status`)) as { system: { voters: string[] } }).system.voters
          .length === 4,
      () => 'four _system voters',
      60_000,
    )
    const created = await waitFor(
      async () => {
        const res = await fetch(`${first.url}/v1/namespaces`, {
          method: 'POST',
          body: JSON.stringify({ name: 'chat' }),
        })
        return res.status === 201 ? ((await res.json()) as NamespaceView) : undefined
      },
      () => 'chat to be created',
    )
    expect(created.voters).toHaveLength(3)
    const systemLeader = ((await getJson(`${first.url}/v1/status`)) as { system: { leader: string } }).system
      .leader
    const victim = cluster.nodes.find((n) => created.voters.includes(n.peer) && n.peer !== systemLeader)!
    const spare = cluster.nodes.find((n) => !created.voters.includes(n.peer))!
    await waitFor(
      async () => !!(await chat(victim))?.leader,
      () => 'chat to elect a leader',
    )

    await deploy(first, 'chat', await exampleModule('counter'))
    for (let i = 0; i < 60; i++) await call(cluster.nodes[i % 4]!, 'chat', 'room', 'increment')

    await cluster.kill(victim)
    const expected = [...created.voters.filter((p) => p !== victim.peer), spare.peer].sort()
    await waitFor(
      async () => {
        const views = await Promise.all(cluster.nodes.map(chat))
        return views.every(
          (v) =>
            v &&
            [...v.voters].sort().join() === expected.join() &&
            v.learners.length === 0 &&
            v.leader !== '',
        )
      },
      () => `chat's replicas to become ${expected.join(', ')} everywhere`,
      90_000,
    )
    const spareView = await chat(spare)
    expect(expected).toContain(spareView!.leader)
    // The spare's own replica holds the state written before it joined.
    await waitFor(
      async () => {
        const r = await call(spare, 'chat', 'room', 'get', '', { consistency: 'stale' })
        return r.servedBy === spare.peer && r.body === '60'
      },
      () => 'the spare to serve the count from its own replica',
      60_000,
    )
    expect((await call(spare, 'chat', 'room', 'increment')).body).toBe('61')
  }, 180_000)
})
