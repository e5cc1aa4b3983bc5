import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { type MemberChange, Membership } from '../../node/membership.js'
import { createHost, type Host } from '../../node/p2p/host.js'
import { SeedDialer } from '../../node/p2p/seeds.js'
import { waitFor } from './wait.js'

const log = pino({ level: 'silent' })

interface TestNode {
  host: Host
  membership: Membership
  seedDialer: SeedDialer
  changes: MemberChange[]
  dir: string
  stopped: boolean
}

const nodes: TestNode[] = []

async function startNode(
  seeds: string[],
  reuseDir?: string,
  listen?: string[],
  leads: () => string[] = () => [],
): Promise<TestNode> {
  const dir = reuseDir ?? (await mkdtemp(join(tmpdir(), 'am-member-')))
  const host = await createHost({ dataDir: dir, seeds, ...(listen ? { listen } : {}) })
  const membership = new Membership(host, () => ({ gateway: '', load: 0, leads: leads() }), Date.now(), log)
  const seedDialer = new SeedDialer(host, seeds, log)
  seedDialer.start()
  const node: TestNode = { host, membership, seedDialer, changes: [], dir, stopped: false }
  membership.onChange((c) => node.changes.push({ member: { ...c.member }, previous: c.previous }))
  membership.start()
  nodes.push(node)
  return node
}

async function stopNode(n: TestNode): Promise<void> {
  if (n.stopped) return
  n.stopped = true
  n.seedDialer.stop()
  n.membership.stop()
  await n.host.stop()
}

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await stopNode(n).catch(() => {})
    await rm(n.dir, { recursive: true, force: true })
  }
})

describe('gossiped membership over real libp2p', () => {
  it('keeps the groups a member leads across beats that leave them out, and sees changes', async () => {
    let led = ['g1', 'g2']
    const a = await startNode([], undefined, undefined, () => led)
    const b = await startNode([a.host.getMultiaddrs()[0]!.toString()])
    const aId = a.host.peerId.toString()
    await waitFor(() => b.membership.get(aId)?.leads.join() === 'g1,g2', 'b to learn what a leads')
    // Most beats now carry no list (it did not change): b keeps the last one.
    const beats = a.membership.counters.published
    await waitFor(() => a.membership.counters.published >= beats + 12, 'a dozen more beats')
    expect(b.membership.get(aId)?.leads).toEqual(['g1', 'g2'])
    led = ['g3']
    await waitFor(() => b.membership.get(aId)?.leads.join() === 'g3', 'b to see the change at the next beat')
  })

  it('reaches a seed that starts after the node (the seed dialer retries)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'am-member-'))
    const seedHost = await createHost({ dataDir: dir })
    const seedAddr = seedHost.getMultiaddrs()[0]!.toString()
    await seedHost.stop()
    const late = await startNode([seedAddr])
    await waitFor(() => late.seedDialer.failedRounds >= 1, 'the seed dialer to fail to reach the absent seed')
    const seed = await startNode([], dir, [seedAddr.slice(0, seedAddr.indexOf('/p2p/'))])
    expect(seed.host.getMultiaddrs()[0]!.toString()).toBe(seedAddr)
    await waitFor(
      () => late.membership.alive().length === 1 && seed.membership.alive().length === 1,
      'the late seed to be found',
    )
  })

  it('lets nodes that know one seed learn about each other, then marks a stopped node dead', async () => {
    const seed = await startNode([])
    const seedAddr = seed.host.getMultiaddrs()[0]!.toString()
    const others = [await startNode([seedAddr]), await startNode([seedAddr]), await startNode([seedAddr])]
    const all = [seed, ...others]
    await waitFor(
      () => all.every((n) => n.membership.alive().length === 3),
      'every node to see 3 alive peers',
    )

    const victim = others[2]!
    const victimId = victim.host.peerId.toString()
    await stopNode(victim)
    const survivors = all.filter((n) => n !== victim)
    await waitFor(
      () => survivors.every((n) => n.membership.get(victimId)?.state === 'dead'),
      'the stopped node to be dead everywhere',
    )
    for (const n of survivors) {
      const states = n.changes.filter((c) => c.member.peer === victimId).map((c) => c.member.state)
      // A loaded machine may flap a member to suspect and back before the stop; the end must be
      // suspect, then dead.
      expect(states[0]).toBe('alive')
      expect(states.slice(-2)).toEqual(['suspect', 'dead'])
    }
  })

  it('publishes without error when it has no peers at all', async () => {
    const lone = await startNode([])
    await waitFor(() => lone.membership.counters.published >= 3, 'three heartbeats to be published')
    expect(lone.membership.counters.publishFailures).toBe(0)
    expect(lone.membership.list()).toEqual([])
  })
})
