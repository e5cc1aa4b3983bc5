import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { createNamespace, deploy } from '../integration/calls.js'
import { getJson, ProcessCluster, waitFor } from '../integration/cluster.js'

/** A span as OTLP/HTTP JSON carries it (ids in hex). */
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
}

/** A stand-in OTLP collector on loopback: keeps every span POSTed to /v1/traces. */
const spans: OtlpSpan[] = []
let collector: Server
const cluster = new ProcessCluster()

beforeAll(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }>
        }
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
  process.env.ACTORMESH_OTLP_ENDPOINT = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`
  await cluster.start(3)
  delete process.env.ACTORMESH_OTLP_ENDPOINT
  await createNamespace(cluster.nodes[0]!, 'traced')
  await deploy(cluster.nodes[0]!, 'traced', await exampleModule('counter'))
}, 180_000)

afterAll(async () => {
  await cluster.stop()
  collector.close()
})

describe('tracing across a forwarding hop', () => {
  it('continues the caller’s trace on the node the call entered and on the leader that ran it', async () => {
    const leader = await waitFor(
      async () => {
        const list = (await getJson(`${cluster.nodes[0]!.url}/v1/namespaces`)) as {
          namespaces: Array<{ name: string; leader: string }>
        }
        return list.namespaces.find((n) => n.name === 'traced')?.leader || undefined
      },
      () => 'a leader for traced',
    )
    const entry = cluster.nodes.find((n) => n.peer !== leader)!
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
    const callerSpan = '00f067aa0ba902b7'
    const res = await waitFor(
      async () => {
        const r = await fetch(`${entry.url}/v1/ns/traced/actors/t1/increment`, {
          method: 'POST',
          headers: { traceparent: `00-${traceId}-${callerSpan}-01`, 'idempotency-key': 'traced-1' },
        })
        return r.status === 200 ? r : undefined
      },
      () => 'a traced call to succeed',
    )
    expect(res.headers.get('x-actormesh-served-by')).toBe(leader)
    expect(res.headers.get('traceparent')).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))
    // Spans are batched and sent every second.
    const [call, execute] = await waitFor(
      () => {
        const mine = spans.filter((s) => s.traceId === traceId)
        const c = mine.find((s) => s.name === 'actormesh.call')
        const e = mine.find((s) => s.name === 'actormesh.execute' && s.parentSpanId === c?.spanId)
        return c && e ? [c, e] : undefined
      },
      () =>
        `both spans of trace ${traceId} at the collector (got ${JSON.stringify(spans.map((s) => s.name))})`,
    )
    expect(call.parentSpanId).toBe(callerSpan)
    expect(execute.spanId).not.toBe(call.spanId)
  })
})
