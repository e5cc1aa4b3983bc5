/**
 * Regression, found by the chaos runs (docs/chaos.md, "Findings"; isolate-leader seed 1001): a
 * call whose run writes nothing — a compare-and-set that fails, sent without an idempotency key —
 * was answered by the namespace leader without confirming its leadership, so a leader cut off
 * from the others answered from state older than writes the new leader had acknowledged. Such a
 * call now waits for a ReadIndex confirmation after it runs.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChaosCluster, type ChaosNode } from '../../chaos/cluster.js'
import { getJson, post, sendJson } from '../../chaos/http.js'
import { exampleModule } from '../actors/examples.js'

let cluster: ChaosCluster | undefined
let dir = ''
afterAll(async () => {
  await cluster?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const roleOf = async (n: ChaosNode) =>
  (
    (await getJson(`${n.url}/v1/chaos/groups`, 2_000)) as { groups: Array<{ group: string; role: string }> }
  ).groups.find((g) => g.group === 'reg')?.role

describe('a leader cut off from the others', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'am-cutoff-'))
    cluster = new ChaosCluster({ dir, logDir: join(dir, 'logs') })
    await cluster.start(3)
    const first = cluster.nodes[0]!
    await until(async () => {
      const st = (await getJson(`${first.url}/v1/status`)) as {
        system: { voters: string[]; learners: string[] }
      }
      return st.system.voters.length + st.system.learners.length === 3 ? true : undefined
    }, 'three members of _system')
    await sendJson(`${first.url}/v1/namespaces`, 'POST', { name: 'reg', replicationFactor: 3 })
    await until(async () => {
      const list = (await getJson(`${first.url}/v1/namespaces`)) as {
        namespaces: Array<{ voters: string[] }>
      }
      return list.namespaces[0]?.voters.length === 3 ? true : undefined
    }, 'three replicas')
    const bytes = await exampleModule('register')
    await until(
      async () =>
        (await sendJson(`${first.url}/v1/namespaces/reg/module`, 'PUT', bytes, 30_000)).status === 200
          ? true
          : undefined,
      'the deploy',
    )
  }, 180_000)

  it('never answers a failed cas from state older than an acknowledged write', async () => {
    // A few rounds: in each, the old leader must not answer from before the new leader's write.
    for (let round = 0; round < 3; round++) await isolateAndAsk(cluster!, round)
  }, 240_000)
})

/** Cuts the leader off, writes through the new one, then asks the old one a cas expecting that write. */
async function isolateAndAsk(c: ChaosCluster, round: number): Promise<void> {
  const first = c.nodes[0]!
  await until(async () => {
    const a = await post(first.url, '/v1/namespaces/reg/actors/x/write', `old-${round}`, { timeoutMs: 5_000 })
    return a.type === 'ok' ? true : undefined
  }, 'a first write')
  const old = await until(async () => {
    for (const n of c.nodes) if ((await roleOf(n)) === 'leader') return n
    return undefined
  }, 'a leader')
  const others = c.nodes.filter((n) => n !== old)
  await c.setFaults(old, { block: others.map((n) => n.peer), delay: {}, drop: {} })
  await Promise.all(others.map((n) => c.setFaults(n, { block: [old.peer], delay: {}, drop: {} })))
  const fresh = await until(async () => {
    for (const n of others) if ((await roleOf(n)) === 'leader') return n
    return undefined
  }, 'a new leader')
  const written = await post(fresh.url, '/v1/namespaces/reg/actors/x/write', `new-${round}`, {
    timeoutMs: 5_000,
  })
  if (written.type === 'ok') {
    const payload = JSON.stringify({ expect: `new-${round}`, value: 'z' })
    const cas = await post(old.url, '/v1/namespaces/reg/actors/x/cas', payload, { timeoutMs: 5_000 })
    // Either the old leader refuses (not leader, outcome unknown) or it sees the new value.
    if (cas.type === 'ok') expect(JSON.parse(cas.body)).not.toEqual({ ok: false, value: `old-${round}` })
  }
  await c.healNetwork()
  await until(async () => ((await roleOf(old)) !== undefined ? true : undefined), 'the old leader to answer')
}
