import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { call, callOnce, createNamespace, deploy } from '../integration/calls.js'
import { ProcessCluster } from '../integration/cluster.js'

const cluster = new ProcessCluster()

beforeAll(async () => {
  await cluster.start(1)
  await createNamespace(cluster.nodes[0]!, 'metered', 1)
  await deploy(cluster.nodes[0]!, 'metered', await exampleModule('counter'))
}, 120_000)

afterAll(async () => {
  await cluster.stop()
})

/** The value of the sample `name{labels}` in a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0
}

async function scrape(): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`${cluster.nodes[0]!.url}/metrics`)
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() }
}

describe('GET /metrics on a real node process', () => {
  it('counts calls, traps, Raft proposals and HTTP answers, with help text, beside libp2p’s own', async () => {
    const node = cluster.nodes[0]!
    const before = await scrape()
    expect(before.status).toBe(200)
    expect(before.type).toContain('text/plain')
    for (let i = 0; i < 5; i++) await call(node, 'metered', `m${i}`, 'increment')
    // A method the counter does not export fails: counted by its code, not as ok.
    expect((await callOnce(node, 'metered', 'm0', 'no-such-method')).status).toBe(404)
    const after = (await scrape()).text

    const ok = 'kind="write",outcome="ok"'
    expect(
      sample(after, 'actormesh_actor_calls_total', ok) -
        sample(before.text, 'actormesh_actor_calls_total', ok),
    ).toBe(5)
    expect(
      sample(after, 'actormesh_actor_calls_total', 'kind="write",outcome="ACTORMESH_METHOD_NOT_FOUND"'),
    ).toBe(1)
    expect(sample(after, 'actormesh_actor_call_seconds_count', 'kind="write"')).toBeGreaterThanOrEqual(6)
    expect(sample(after, 'actormesh_actor_fuel_used_count')).toBeGreaterThanOrEqual(5)
    expect(sample(after, 'actormesh_raft_proposals_total')).toBeGreaterThanOrEqual(5)
    expect(sample(after, 'actormesh_raft_commit_seconds_count')).toBeGreaterThanOrEqual(5)
    // This single node leads _system and the namespace.
    expect(sample(after, 'actormesh_raft_groups', 'role="leader"')).toBe(2)
    expect(sample(after, 'actormesh_raft_log_entries')).toBeGreaterThan(0)
    expect(sample(after, 'actormesh_actor_resident_instances')).toBeGreaterThanOrEqual(1)
    expect(
      sample(after, 'actormesh_http_requests_total', 'method="POST",status="200"'),
    ).toBeGreaterThanOrEqual(5)
    expect(
      sample(after, 'actormesh_http_requests_total', 'method="POST",status="404"'),
    ).toBeGreaterThanOrEqual(1)
    expect(after).toContain('# HELP actormesh_raft_leader_changes_total ')
    expect(after).toMatch(/^libp2p_\w+/m)
  })
})
