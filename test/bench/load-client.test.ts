import { createServer, type IncomingMessage, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig, runLoad } from '../../bench/load-client.js'

/** What a fake etcd gateway saw: one entry per request. */
interface Seen {
  server: number
  method: string
  url: string
  key: string
  value: string
}

const servers: Server[] = []

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
})

async function bodyOf(req: IncomingMessage): Promise<string> {
  let text = ''
  for await (const chunk of req) text += String(chunk)
  return text
}

/**
 * Three fake etcd members on loopback answering puts like etcd 3.4's gateway; the very first request
 * is answered 503 with gRPC code 14 (a leader change). Stops the load after `stopAfter` requests.
 */
async function fakeEtcd(stopAfter: number, stop: () => void) {
  const seen: Seen[] = []
  let ok = 0
  const urls: string[] = []
  for (let i = 0; i < 3; i++) {
    const server = createServer(async (req, res) => {
      const body = JSON.parse(await bodyOf(req)) as { key: string; value: string }
      const decode = (b: string) => Buffer.from(b, 'base64').toString()
      seen.push({
        server: i,
        method: req.method ?? '',
        url: req.url ?? '',
        key: decode(body.key),
        value: decode(body.value),
      })
      if (seen.length === stopAfter) stop()
      if (seen.length === 1) {
        res.writeHead(503, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: 'etcdserver: leader changed', code: 14 }))
        return
      }
      ok++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ header: { revision: String(ok + 1) } }))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    servers.push(server)
    urls.push(`http://127.0.0.1:${(server.address() as { port: number }).port}`)
  }
  return { seen, urls, acknowledged: () => ok }
}

describe('load client etcd transport', () => {
  it('puts each actor key base64 to /v3/kv/put round-robin over the members and retries 503s', async () => {
    let onCommand: (cmd: { cmd: string }) => void = () => {}
    const etcd = await fakeEtcd(120, () => onCommand({ cmd: 'stop' }))
    const config = loadConfig({
      targets: etcd.urls.map((url, i) => ({ url, peer: `m${i}` })),
      namespaces: ['w0', 'w1'],
      actors: 10,
      concurrency: 4,
      warmupMs: 0,
      durationMs: 0,
      payload: '00000001',
      transport: 'etcd',
      seed: 7,
    })
    const result = await runLoad(config, () => {}, { onCommand: (h) => (onCommand = h) })

    expect(etcd.seen.length).toBeGreaterThanOrEqual(120)
    for (const s of etcd.seen) {
      expect(s.method).toBe('POST')
      expect(s.url).toBe('/v3/kv/put')
      expect(s.value).toBe('00000001')
      const m = /^w([01])\/a(\d)$/.exec(s.key)
      expect(m, s.key).not.toBeNull()
      // Actor i lives in namespace i mod 2, as for the cluster's calls.
      expect(Number(m![2]) % 2).toBe(Number(m![1]))
    }
    for (const server of [0, 1, 2])
      expect(etcd.seen.filter((s) => s.server === server).length).toBeGreaterThan(20)
    expect(new Set(etcd.seen.map((s) => s.key)).size).toBeGreaterThan(5)
    expect(result.retries).toBe(1)
    expect(result.retriesBy).toEqual({ 'grpc 14': 1 })
    expect(result.errors).toBe(0)
    expect(result.acked).toBe(etcd.acknowledged())
    expect(result.transport).toBe('etcd')
  })

  it('refuses leader routing with the etcd transport, naming the route', () => {
    expect(() =>
      loadConfig({
        targets: [{ url: 'http://127.0.0.1:1', peer: 'm0' }],
        namespaces: ['w0'],
        transport: 'etcd',
        route: 'leader',
      }),
    ).toThrow(/route 'leader'/)
  })
})
