import { afterEach, describe, expect, it } from 'vitest'
import { type ClusterNode, getJson, ProcessCluster, waitFor } from './cluster.js'

interface SystemStatus {
  joined: boolean
  leader: string
  term: number
  voters: string[]
  learners: string[]
}

let cluster: ProcessCluster

afterEach(async () => {
  await cluster.stop()
})

async function system(node: ClusterNode): Promise<SystemStatus> {
  return ((await getJson(`${node.url}/v1/status`)) as { system: SystemStatus }).system
}

/** Every node agrees on one `_system` leader among `nodes`, with exactly `voters` voting. */
async function agreed(nodes: ClusterNode[], voters: string[]): Promise<string | false> {
  const views = await Promise.all(nodes.map(system))
  const leader = views[0]!.leader
  const ok = views.every(
    (v) =>
      v.joined &&
      v.leader === leader &&
      leader !== '' &&
      [...v.voters].sort().join() === [...voters].sort().join(),
  )
  return ok ? leader : false
}

describe('the _system group across three node processes', () => {
  it('lets joining nodes in as voters, elects a new leader when the leader is killed, and takes the old one back', async () => {
    cluster = new ProcessCluster()
    await cluster.start(3)
    const peers = cluster.nodes.map((n) => n.peer)
    const leader = await waitFor(
      () => agreed(cluster.nodes, peers),
      () => 'all three nodes to agree on a _system leader with three voters',
      60_000,
    )
    expect(peers).toContain(leader)

    const old = cluster.nodes.find((n) => n.peer === leader)!
    await cluster.kill(old)
    const next = await waitFor(
      async () => {
        const l = await agreed(cluster.nodes, peers)
        return l && l !== leader ? l : false
      },
      () => 'the two survivors to elect a new _system leader',
      60_000,
    )
    expect(next).not.toBe(leader)

    // The killed node restarts from its data directory: same peer id, its _system replica comes
    // back from raft.db and catches up with the new leader.
    const back = await cluster.startNode(
      old.dataDir,
      [cluster.nodes[0]!.addr],
      [],
      old.addr.slice(0, old.addr.indexOf('/p2p/')),
    )
    expect(back.peer).toBe(old.peer)
    await waitFor(
      async () => (await agreed(cluster.nodes, peers)) === next,
      () => 'the restarted node to follow the new leader',
      60_000,
    )
  }, 180_000)
})
