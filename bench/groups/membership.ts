/**
 * Membership benchmark: 10 libp2p nodes in one process on loopback. `membership.join_ms` is the
 * time from starting the 10th node until all 10 know each other; `membership.dead_ms` the time
 * from stopping one node until every other marks it dead.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { MEMBERSHIP_DEFAULTS, Membership } from '../../node/membership.js'
import { createHost, type Host } from '../../node/p2p/host.js'
import type { BenchGroup } from '../types.js'

const log = pino({ level: 'silent' })

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const start = performance.now()
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error('benchmark condition timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

const run: BenchGroup = async ({ quick, log: say }) => {
  const count = quick ? 5 : 10
  const root = await mkdtemp(join(tmpdir(), 'am-bench-member-'))
  const nodes: Array<{ host: Host; membership: Membership }> = []
  const start = async (seeds: string[]) => {
    const host = await createHost({ dataDir: join(root, String(nodes.length)), seeds })
    const membership = new Membership(host, () => ({ gateway: '', load: 0, leads: [] }), Date.now(), log)
    membership.start()
    nodes.push({ host, membership })
    return nodes[nodes.length - 1]!
  }
  try {
    const seed = await start([])
    const seedAddr = seed.host.getMultiaddrs()[0]!.toString()
    for (let i = 1; i < count - 1; i++) await start([seedAddr])
    await waitFor(() => nodes.every((n) => n.membership.alive().length === nodes.length - 1), 30_000)
    // Timed from the moment the new node's host is up: in one process the other nine nodes'
    // work slows its start-up, which is not what the figure is about.
    const last = await start([seedAddr])
    const joinStart = performance.now()
    const lastId = last.host.peerId.toString()
    await waitFor(
      () =>
        nodes.every((n) => n === last || n.membership.get(lastId)?.state === 'alive') &&
        last.membership.alive().length === count - 1,
      30_000,
    )
    const joinMs = performance.now() - joinStart
    say(`${count} nodes: new node known to all after ${joinMs.toFixed(0)} ms`)

    const victim = nodes[1]!
    const victimId = victim.host.peerId.toString()
    const deadStart = performance.now()
    victim.membership.stop()
    await victim.host.stop()
    await waitFor(
      () => nodes.every((n) => n === victim || n.membership.get(victimId)?.state === 'dead'),
      30_000,
    )
    const deadMs = performance.now() - deadStart
    say(`stopped node dead everywhere after ${deadMs.toFixed(0)} ms`)
    return [
      {
        key: 'membership.join_ms',
        value: Math.round(joinMs),
        unit: 'ms',
        target: '<= 2000',
        note: `${count} nodes`,
      },
      {
        key: 'membership.dead_ms',
        value: Math.round(deadMs),
        unit: 'ms',
        target: '<= 3000',
        note: `dead after ${MEMBERSHIP_DEFAULTS.deadAfterMs} ms of silence`,
      },
    ]
  } finally {
    for (const n of nodes) {
      n.membership.stop()
      try {
        await n.host.stop()
      } catch {
        // already stopped (the victim)
      }
    }
    await rm(root, { recursive: true, force: true })
  }
}

export default run
