/**
 * The HTTP API of real node processes: the `/v1/ns/...` routes and their `/v1/namespaces/...`
 * aliases, JSON and byte payloads, the call headers, readiness, and JSON errors with their status.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { type ClusterNode, ProcessCluster, waitFor } from '../integration/cluster.js'

let cluster: ProcessCluster | undefined

afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

interface Answer {
  status: number
  headers: Headers
  text: string
  json: () => { code?: string; message?: string } & Record<string, unknown>
}

async function http(
  node: ClusterNode,
  method: string,
  path: string,
  body?: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) }
}

/** Repeats `op` while it answers 503 (no leader yet); returns the first other answer. */
function untilNot503(what: string, op: () => Promise<Answer>): Promise<Answer> {
  return waitFor(
    async () => {
      const a = await op()
      return a.status === 503 ? undefined : a
    },
    () => what,
    60_000,
  )
}

/** A one-node cluster with namespace `ns` (one replica) running the counter example. */
async function counterNode(ns: string): Promise<ClusterNode> {
  cluster = new ProcessCluster()
  await cluster.start(1)
  const node = cluster.nodes[0]!
  const created = await untilNot503('create', () =>
    http(node, 'POST', '/v1/ns', JSON.stringify({ name: ns, replicationFactor: 1 })),
  )
  expect(created.status).toBe(201)
  const wasm = await exampleModule('counter')
  const deployed = await untilNot503('deploy', () => http(node, 'PUT', `/v1/ns/${ns}/module`, wasm))
  expect(deployed.status).toBe(200)
  return node
}

describe('HTTP API', () => {
  it('serves namespaces under /v1/ns and the /v1/namespaces aliases, with JSON errors', async () => {
    cluster = new ProcessCluster()
    await cluster.start(1)
    const node = cluster.nodes[0]!
    await waitFor(
      async () => (await http(node, 'GET', '/readyz')).status === 200,
      () => 'the node to be ready',
    )
    expect((await http(node, 'GET', '/healthz')).json()).toMatchObject({ ok: true, peer: node.peer })

    const created = await untilNot503('create', () =>
      http(node, 'POST', '/v1/ns', JSON.stringify({ name: 'api', replicationFactor: 1 })),
    )
    expect([created.status, created.json().name]).toEqual([201, 'api'])
    const again = await http(node, 'POST', '/v1/namespaces', JSON.stringify({ name: 'api' }))
    expect([again.status, again.json().code]).toEqual([409, 'ACTORMESH_CONFLICT'])
    const badName = await http(node, 'POST', '/v1/ns', JSON.stringify({ name: '../x' }))
    expect([badName.status, badName.json().code]).toEqual([400, 'ACTORMESH_BAD_REQUEST'])
    const badJson = await http(node, 'POST', '/v1/ns', '{"name":')
    expect([badJson.status, badJson.json().code]).toEqual([400, 'ACTORMESH_BAD_REQUEST'])

    for (const prefix of ['/v1/ns', '/v1/namespaces']) {
      const list = (await http(node, 'GET', prefix)).json() as { namespaces: Array<{ name: string }> }
      expect(list.namespaces.map((n) => n.name)).toEqual(['api'])
      const one = await http(node, 'GET', `${prefix}/api`)
      expect([one.status, one.json().name, one.json().replicationFactor]).toEqual([200, 'api', 1])
    }
    const missing = await http(node, 'GET', '/v1/ns/nope')
    expect([missing.status, missing.json().code]).toEqual([404, 'ACTORMESH_NAMESPACE_NOT_FOUND'])
    expect(missing.headers.get('content-type')).toBe('application/json')

    const noRoute = await http(node, 'GET', '/v1/nothing-here')
    expect([noRoute.status, noRoute.json().code]).toEqual([404, 'ACTORMESH_NOT_FOUND'])
    const wrongMethod = await http(node, 'GET', '/v1/ns/api/actors/a/get')
    expect([wrongMethod.status, wrongMethod.json().code]).toEqual([405, 'ACTORMESH_METHOD_NOT_ALLOWED'])
    const members = (await http(node, 'GET', '/v1/members')).json() as { self: { peer: string } }
    expect(members.self.peer).toBe(node.peer)
    expect((await http(node, 'GET', '/v1/status')).json()).toMatchObject({ peer: node.peer })
  }, 120_000)

  it('calls actors with byte or JSON payloads and the call headers', async () => {
    const node = await counterNode('calls')
    const path = (actor: string, method: string) => `/v1/ns/calls/actors/${actor}/${method}`
    const bytes = await untilNot503('first call', () => http(node, 'POST', path('c1', 'increment'), '2'))
    expect([bytes.status, bytes.text, bytes.headers.get('content-type')]).toEqual([
      200,
      '2',
      'application/octet-stream',
    ])
    expect(bytes.headers.get('x-actormesh-served-by')).toBe(node.peer)

    // JSON in, JSON out when the reply is JSON; octet-stream when it is not ('ok').
    const json = { 'content-type': 'application/json' }
    const asJson = await http(node, 'POST', path('c1', 'increment'), '3', json)
    expect([asJson.status, asJson.text, asJson.headers.get('content-type')]).toEqual([
      200,
      '5',
      'application/json',
    ])
    const notJsonReply = await http(
      node,
      'POST',
      path('c1', 'reset_at'),
      String(Date.now() + 3_600_000),
      json,
    )
    expect([notJsonReply.text, notJsonReply.headers.get('content-type')]).toEqual([
      'ok',
      'application/octet-stream',
    ])
    const badJson = await http(node, 'POST', path('c1', 'increment'), '{"by":', json)
    expect([badJson.status, badJson.json().code]).toEqual([400, 'ACTORMESH_BAD_REQUEST'])
    expect(badJson.json().message).toContain('not JSON')

    // The aliases and the query options still work.
    const alias = await http(node, 'POST', '/v1/namespaces/calls/actors/c1/get?consistency=stale')
    expect([alias.status, alias.text]).toEqual([200, '5'])
    const stale = await http(node, 'POST', path('c1', 'get'), '', { 'x-actormesh-consistency': 'stale' })
    expect([stale.status, stale.text]).toEqual([200, '5'])
    const badConsistency = await http(node, 'POST', path('c1', 'get'), '', {
      'x-actormesh-consistency': 'eventual',
    })
    expect([badConsistency.status, badConsistency.json().code]).toEqual([400, 'ACTORMESH_BAD_REQUEST'])
    const readonly = await http(node, 'POST', path('c1', 'increment'), '1', {
      'x-actormesh-readonly': 'true',
    })
    expect([readonly.status, readonly.json().code]).toEqual([409, 'ACTORMESH_READONLY_VIOLATION'])
    expect((await http(node, 'POST', path('c1', 'get'))).text).toBe('5')

    // Idempotency-Key: the retry gets the first reply, marked replayed.
    const key = { 'idempotency-key': 'k-1' }
    const first = await http(node, 'POST', path('c2', 'increment'), '7', key)
    const retry = await http(node, 'POST', path('c2', 'increment'), '7', key)
    expect([first.text, retry.text, retry.headers.get('x-actormesh-replayed')]).toEqual(['7', '7', 'true'])

    // traceparent: validated, echoed with the same trace id and flags and a new span id.
    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const traced = await http(node, 'POST', path('c1', 'get'), '', { traceparent: parent })
    const echoed = traced.headers.get('traceparent') ?? ''
    expect(echoed).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/)
    expect(echoed).not.toBe(parent)
    for (const bad of ['00-xyz-00f067aa0ba902b7-01', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`]) {
      const refused = await http(node, 'POST', path('c1', 'get'), '', { traceparent: bad })
      expect([refused.status, refused.json().code]).toEqual([400, 'ACTORMESH_BAD_REQUEST'])
    }

    const tooLarge = await http(node, 'POST', path('c1', 'increment'), new Uint8Array((1 << 20) + 1))
    expect([tooLarge.status, tooLarge.json().code]).toEqual([413, 'ACTORMESH_BODY_TOO_LARGE'])
    const noMethod = await http(node, 'POST', path('c1', 'nope'))
    expect([noMethod.status, noMethod.json().code]).toEqual([404, 'ACTORMESH_METHOD_NOT_FOUND'])
    const noNs = await http(node, 'POST', '/v1/ns/absent/actors/a/get')
    expect([noNs.status, noNs.json().code]).toEqual([404, 'ACTORMESH_NAMESPACE_NOT_FOUND'])
  }, 120_000)

  it('deletes a namespace on every replica, and a namespace created again under its name starts empty', async () => {
    cluster = new ProcessCluster()
    await cluster.start(3)
    const nodes = cluster.nodes
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode]
    const gone = () => http(a, 'POST', '/v1/ns', JSON.stringify({ name: 'gone', replicationFactor: 3 }))
    await waitFor(
      async () =>
        ((await http(a, 'GET', '/v1/status')).json().system as { voters: string[] }).voters.length === 3,
      () => 'three _system voters',
    )
    // A node answers from its own catalog, which may apply the create a beat after the leader's.
    const everywhere = (present: boolean) =>
      Promise.all(
        nodes.map((n) =>
          waitFor(
            async () => (await http(n, 'GET', '/v1/ns/gone')).status === (present ? 200 : 404),
            () => `gone to be ${present ? 'listed' : 'gone'} on ${n.url}`,
          ),
        ),
      )
    expect((await untilNot503('create', gone)).status).toBe(201)
    await everywhere(true)
    const wasm = await exampleModule('counter')
    expect((await untilNot503('deploy', () => http(b, 'PUT', '/v1/ns/gone/module', wasm))).status).toBe(200)
    const inc = await untilNot503('increment', () => http(c, 'POST', '/v1/ns/gone/actors/x/increment', '41'))
    expect(inc.text).toBe('41')
    // An alarm far ahead: the deleted namespace's alarm index must go with it.
    const later = String(Date.now() + 3_600_000)
    expect(
      (await untilNot503('alarm', () => http(a, 'POST', '/v1/ns/gone/actors/y/reset_at', later))).text,
    ).toBe('ok')
    const files = async (n: ClusterNode) =>
      (await readdir(join(n.dataDir, 'ns'))).filter((f) => f.startsWith('gone.db'))
    for (const n of nodes) {
      await waitFor(
        async () => (await files(n)).length > 0,
        () => `a replica of gone on ${n.url}`,
      )
    }

    const deleted = await untilNot503('delete', () => http(b, 'DELETE', '/v1/ns/gone'))
    expect([deleted.status, deleted.json()]).toEqual([200, { deleted: 'gone' }])
    for (const n of nodes) {
      await waitFor(
        async () => (await files(n)).length === 0,
        () => `gone's files to be removed on ${n.url}`,
      )
      expect((await http(n, 'GET', '/v1/ns/gone')).status).toBe(404)
      const call = await http(n, 'POST', '/v1/ns/gone/actors/x/get')
      expect([call.status, call.json().code]).toEqual([404, 'ACTORMESH_NAMESPACE_NOT_FOUND'])
    }
    const twice = await http(c, 'DELETE', '/v1/ns/gone')
    expect([twice.status, twice.json().code]).toEqual([404, 'ACTORMESH_NAMESPACE_NOT_FOUND'])

    // Created again: empty, no module until one is deployed, every node still up and ready.
    expect((await untilNot503('create again', gone)).status).toBe(201)
    await everywhere(true)
    const undeployed = await untilNot503('call before deploy', () =>
      http(c, 'POST', '/v1/ns/gone/actors/x/get'),
    )
    expect([undeployed.status, undeployed.json().code]).toEqual([409, 'ACTORMESH_NAMESPACE_NOT_DEPLOYED'])
    expect((await untilNot503('deploy again', () => http(a, 'PUT', '/v1/ns/gone/module', wasm))).status).toBe(
      200,
    )
    expect((await untilNot503('get', () => http(b, 'POST', '/v1/ns/gone/actors/x/get'))).text).toBe('0')
    for (const n of nodes) {
      expect(n.proc.exitCode).toBeNull()
      await waitFor(
        async () => (await http(n, 'GET', '/readyz')).status === 200,
        () => `${n.url} ready`,
      )
    }
  }, 180_000)
})
