import { createServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createH2Server, type Http2Server } from 'node:http2'
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

const servers: Array<Server | Http2Server> = []

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

/** A stop command for a load run, wired before the run starts (the fakes stop it themselves). */
function stopper() {
  let handler: (cmd: { cmd: string }) => void = () => {}
  return {
    stop: () => handler({ cmd: 'stop' }),
    control: { onCommand: (h: (cmd: { cmd: string }) => void) => (handler = h) },
  }
}

/** Four clients putting 10 actor keys of namespaces w0 and w1 to the fake members until stopped. */
function putLoad(urls: string[], transport: 'etcd' | 'etcd-grpc') {
  return loadConfig({
    targets: urls.map((url, i) => ({ url, peer: `m${i}` })),
    namespaces: ['w0', 'w1'],
    actors: 10,
    concurrency: 4,
    warmupMs: 0,
    durationMs: 0,
    payload: '00000001',
    transport,
    seed: 7,
  })
}

/** Every put went to `url` with the value, for a key of the right namespace, spread over all members. */
function expectPuts(seen: Seen[], url: string, atLeast: number) {
  expect(seen.length).toBeGreaterThanOrEqual(atLeast)
  for (const s of seen) {
    expect(s.method).toBe('POST')
    expect(s.url).toBe(url)
    expect(s.value).toBe('00000001')
    const m = /^w([01])\/a(\d)$/.exec(s.key)
    expect(m, s.key).not.toBeNull()
    // Actor i lives in namespace i mod 2, as for the cluster's calls.
    expect(Number(m![2]) % 2).toBe(Number(m![1]))
  }
  for (const server of [0, 1, 2]) expect(seen.filter((x) => x.server === server).length).toBeGreaterThan(20)
  expect(new Set(seen.map((x) => x.key)).size).toBeGreaterThan(5)
}

describe('load client etcd transport', () => {
  it('puts each actor key base64 to /v3/kv/put round-robin over the members and retries 503s', async () => {
    const { stop, control } = stopper()
    const etcd = await fakeEtcd(120, stop)
    const result = await runLoad(putLoad(etcd.urls, 'etcd'), () => {}, control)

    expectPuts(etcd.seen, '/v3/kv/put', 120)
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

/** The length-delimited fields of a protobuf message by field number (what a PutRequest holds). */
function protoFields(msg: Buffer): Map<number, string> {
  const fields = new Map<number, string>()
  let at = 0
  const varint = () => {
    let n = 0
    for (let shift = 0; ; shift += 7) {
      const b = msg[at++]!
      n |= (b & 0x7f) << shift
      if (b < 0x80) return n
    }
  }
  while (at < msg.length) {
    const tag = varint()
    expect(tag & 7, 'wire type').toBe(2)
    const len = varint()
    fields.set(tag >> 3, msg.subarray(at, at + len).toString())
    at += len
  }
  return fields
}

/**
 * Three fake etcd members speaking gRPC over cleartext HTTP/2: the first put is answered
 * Unavailable (trailers only, as etcd answers a leader change), the second InvalidArgument, the
 * rest OK with an empty PutResponse and the status in trailers. Stops the load after `stopAfter`.
 */
async function fakeGrpcEtcd(stopAfter: number, stop: () => void) {
  const seen: Seen[] = []
  const sessions: number[] = []
  let ok = 0
  const urls: string[] = []
  for (let i = 0; i < 3; i++) {
    const server = createH2Server()
    server.on('session', () => sessions.push(i))
    server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = []
      stream.on('data', (d: Buffer) => chunks.push(d))
      stream.on('end', () => {
        const frame = Buffer.concat(chunks)
        expect(frame[0], 'compressed flag').toBe(0)
        expect(frame.readUInt32BE(1)).toBe(frame.length - 5)
        const fields = protoFields(frame.subarray(5))
        seen.push({
          server: i,
          method: String(headers[':method']),
          url: `${String(headers[':path'])} ${String(headers['content-type'])}`,
          key: fields.get(1) ?? '',
          value: fields.get(2) ?? '',
        })
        if (seen.length === stopAfter) stop()
        const base = { ':status': 200, 'content-type': 'application/grpc' }
        if (seen.length <= 2) {
          const [status, message] = seen.length === 1 ? ['14', 'etcdserver: leader changed'] : ['3', 'bad']
          stream.respond({ ...base, 'grpc-status': status, 'grpc-message': message }, { endStream: true })
          return
        }
        ok++
        stream.respond(base, { waitForTrailers: true })
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
        stream.end(Buffer.from([0, 0, 0, 0, 0]))
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    servers.push(server)
    urls.push(`http://127.0.0.1:${(server.address() as { port: number }).port}`)
  }
  return { seen, urls, sessions, acknowledged: () => ok }
}

describe('load client etcd-grpc transport', () => {
  it('puts each actor key over gRPC round-robin, retries Unavailable and counts other statuses as errors', async () => {
    const { stop, control } = stopper()
    const etcd = await fakeGrpcEtcd(150, stop)
    const result = await runLoad(putLoad(etcd.urls, 'etcd-grpc'), () => {}, control)

    expectPuts(etcd.seen, '/etcdserverpb.KV/Put application/grpc', 150)
    // One HTTP/2 connection per member, shared by the four clients.
    expect([...etcd.sessions].sort()).toEqual([0, 1, 2])
    expect(result.retries).toBe(1)
    expect(result.retriesBy).toEqual({ 'grpc 14': 1 })
    expect(result.errors).toBe(1)
    expect(result.errorsBy).toEqual({ '500 grpc 3': 1 })
    expect(result.acked).toBe(etcd.acknowledged())
    expect(result.transport).toBe('etcd-grpc')
  })
})
