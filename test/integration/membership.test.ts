import { afterEach, describe, expect, it } from 'vitest'
import { ProcessCluster, waitFor } from './cluster.js'

let cluster: ProcessCluster

afterEach(async () => {
  await cluster.stop()
})

describe('three node processes', () => {
  it('join from one seed, mark a killed node dead, and take it back with the same peer id after a restart', async () => {
    cluster = new ProcessCluster()
    await cluster.start(3)
    const [a, b, c] = [cluster.nodes[0]!, cluster.nodes[1]!, cluster.nodes[2]!]
    const aliveEverywhere = async (peers: string[]) => {
      for (const n of cluster.nodes) {
        const view = await cluster.members(n)
        const alive = view.filter((m) => m.state === 'alive').map((m) => m.peer)
        if (!peers.every((p) => p === n.peer || alive.includes(p))) return false
      }
      return true
    }
    const all = [a.peer, b.peer, c.peer]
    await waitFor(
      () => aliveEverywhere(all),
      () => 'all three nodes to see each other',
    )

    const victim = c
    const { dataDir, addr } = victim
    await cluster.kill(victim)
    await waitFor(
      async () =>
        (await cluster.members(a)).find((m) => m.peer === victim.peer)?.state === 'dead' &&
        (await cluster.members(b)).find((m) => m.peer === victim.peer)?.state === 'dead',
      () => 'the killed node to be marked dead on both survivors',
    )

    const back = await cluster.startNode(dataDir, [a.addr], [], addr.slice(0, addr.indexOf('/p2p/')))
    expect(back.peer).toBe(victim.peer)
    await waitFor(
      () => aliveEverywhere(all),
      () => 'the restarted node to be alive everywhere again',
    )
  }, 180_000)
})
