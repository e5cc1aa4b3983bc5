/**
 * `actormesh/client`: retry rules against a scripted fetch, then call() and subscribe() against
 * three real node processes (counter and chat examples), through a node's death.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backoffMs, RETRY_DEFAULTS } from '../../node/client/backoff.js'
import {
  type ActorEvent,
  ActorMeshClient,
  ActorMeshError,
  type RetryEvent,
  seededRandom,
  type WebSocketConstructor,
} from '../../node/client/index.js'
import { exampleModule, fixtureModule } from '../actors/examples.js'
import { call, createNamespace, deploy } from '../integration/calls.js'
import {
  type ClusterNode,
  getJson,
  type NamespaceView,
  ProcessCluster,
  waitFor,
} from '../integration/cluster.js'

const SEED = Number(process.env.CLIENT_TEST_SEED ?? 7)

/** A port on 127.0.0.1 that nothing listens on (it was bound, then closed). */
async function closedPort(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return `http://127.0.0.1:${port}`
}

interface Seen {
  url: string
  headers: Headers
  body: string
}

/** A fetch that answers from a script, one entry per request, and records every request. */
function scriptedFetch(script: Array<(req: Seen) => Response | Error>): {
  fetch: typeof fetch
  seen: Seen[]
} {
  const seen: Seen[] = []
  const fake = async function (this: unknown, input: string | URL | Request, init?: RequestInit) {
    // As a browser's fetch does when called as a method of another object.
    if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation')
    const req = {
      url: String(input),
      headers: new Headers(init?.headers),
      body: new TextDecoder().decode(init?.body as Uint8Array),
    }
    seen.push(req)
    const step = script.shift()
    if (!step) throw new Error(`unscripted request ${req.url}`)
    const out = step(req)
    if (out instanceof Error) throw out
    return out
  }
  return { fetch: fake as typeof fetch, seen }
}

const answer =
  (status: number, body: unknown, headers: Record<string, string> = {}) =>
  () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers })
const refused = () => () =>
  new TypeError('fetch failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) })
const reset = () => () =>
  new TypeError('fetch failed', { cause: Object.assign(new Error('socket'), { code: 'ECONNRESET' }) })
const unavailable = (code: string) => answer(503, { code, message: code }, { 'retry-after': '1' })

describe('client retry rules (scripted fetch)', () => {
  const fast = { attempts: 5, baseMs: 1, maxMs: 2 }

  it('backs off exponentially with full jitter, at least Retry-After, at most maxMs', () => {
    const r = { attempts: 10, baseMs: 100, maxMs: 5_000 }
    expect(backoffMs(1, r, () => 0.5)).toBe(50)
    expect(backoffMs(3, r, () => 0.5)).toBe(200)
    expect(backoffMs(10, r, () => 0.999)).toBe(4_995)
    expect(backoffMs(1, r, () => 0, 1_000)).toBe(1_000)
    expect(backoffMs(1, r, () => 0, 60_000)).toBe(5_000)
    const random = seededRandom(SEED)
    const delays = Array.from({ length: 50 }, (_, i) => backoffMs((i % 6) + 1, RETRY_DEFAULTS, random))
    expect(delays.every((d, i) => d >= 0 && d < 100 * 2 ** (i % 6))).toBe(true)
    expect(new Set(delays).size).toBeGreaterThan(10)
  })

  it('retries a write on 503 with the same generated idempotency key', async () => {
    const { fetch, seen } = scriptedFetch([
      unavailable('ACTORMESH_NO_LEADER'),
      unavailable('ACTORMESH_OUTCOME_UNKNOWN'),
      answer(200, '7', { 'x-actormesh-served-by': 'peer-1' }),
    ])
    const retries: RetryEvent[] = []
    const client = new ActorMeshClient({
      nodes: ['http://n1'],
      fetch,
      retry: fast,
      random: seededRandom(SEED),
      onRetry: (e) => retries.push(e),
    })
    const out = await client.call('ns', 'a', 'increment', { by: 1 })
    expect(out.text()).toBe('7')
    expect(out.json()).toBe(7)
    expect(out.servedBy).toBe('peer-1')
    const keys = seen.map((s) => s.headers.get('idempotency-key'))
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/)
    expect(new Set(keys)).toEqual(new Set([keys[0]]))
    expect(seen.map((s) => s.body)).toEqual(Array(3).fill('{"by":1}'))
    expect(seen[0]!.headers.get('content-type')).toBe('application/json')
    expect(retries.map((r) => [r.attempt, r.error.code, r.delayMs <= fast.maxMs])).toEqual([
      [1, 'ACTORMESH_NO_LEADER', true],
      [2, 'ACTORMESH_OUTCOME_UNKNOWN', true],
    ])
  })

  it('sends each call to a fresh key, and the caller’s key unchanged', async () => {
    const { fetch, seen } = scriptedFetch([answer(200, ''), answer(200, ''), answer(200, '')])
    const client = new ActorMeshClient({ nodes: ['http://n1'], fetch })
    await client.call('ns', 'a', 'm')
    await client.call('ns', 'a', 'm', new Uint16Array([0x6968]).subarray(0, 1))
    await client.call('ns', 'a', 'm', 'x', { idempotencyKey: 'mine' })
    const keys = seen.map((s) => s.headers.get('idempotency-key'))
    expect(keys[0]).not.toBe(keys[1])
    expect(keys[2]).toBe('mine')
    expect(seen.map((s) => [s.body, s.headers.get('content-type')])).toEqual([
      ['', 'application/octet-stream'],
      ['hi', 'application/octet-stream'],
      ['x', 'text/plain; charset=utf-8'],
    ])
  })

  it('does not retry a write without a key when its outcome is unknown, but does when nothing was sent', async () => {
    const { fetch, seen } = scriptedFetch([
      refused(),
      reset(),
      refused(),
      unavailable('ACTORMESH_NOT_APPLIED'),
      unavailable('ACTORMESH_OUTCOME_UNKNOWN'),
    ])
    const client = new ActorMeshClient({
      nodes: ['http://n1', 'http://n2'],
      fetch,
      retry: fast,
      autoIdempotencyKeys: false,
    })
    // Refused by n1 (never sent): retried on n2, whose connection resets mid-request (unknown).
    const first = await client.call('ns', 'a', 'm').catch((e: unknown) => e)
    expect(first).toBeInstanceOf(ActorMeshError)
    expect(first).toMatchObject({ code: 'ACTORMESH_CLIENT_UNREACHABLE', retryable: true, status: 0 })
    // The ring moved on from n2 to n1: refused, then 'certainly not applied' (retried), then unknown.
    const second = await client.call('ns', 'a', 'm').catch((e: unknown) => e)
    expect(second).toMatchObject({ code: 'ACTORMESH_OUTCOME_UNKNOWN', status: 503, retryable: true })
    expect(seen.map((s) => new URL(s.url).host)).toEqual(['n1', 'n2', 'n1', 'n2', 'n2'])
    expect(seen.every((s) => !s.headers.has('idempotency-key'))).toBe(true)
  })

  it('throws a non-retryable answer at once, with its code and status', async () => {
    const { fetch, seen } = scriptedFetch([
      answer(404, { code: 'ACTORMESH_NAMESPACE_NOT_FOUND', message: "No namespace 'ns'" }),
      answer(502, '<html>bad gateway</html>'),
    ])
    const client = new ActorMeshClient({ nodes: ['http://n1'], fetch, retry: fast })
    const e = await client.call('ns', 'a', 'm').catch((x: unknown) => x)
    expect(e).toMatchObject({
      name: 'ActorMeshError',
      code: 'ACTORMESH_NAMESPACE_NOT_FOUND',
      status: 404,
      retryable: false,
      message: "No namespace 'ns'",
    })
    const proxy = await client.call('ns', 'a', 'm').catch((x: unknown) => x)
    expect(proxy).toMatchObject({ code: 'ACTORMESH_CLIENT_BAD_RESPONSE', status: 502, retryable: false })
    expect(seen).toHaveLength(2)
  })

  it('gives up after retry.attempts with the last failure', async () => {
    const { fetch, seen } = scriptedFetch(
      Array.from({ length: 3 }, () => unavailable('ACTORMESH_ACTOR_BUSY')),
    )
    const client = new ActorMeshClient({ nodes: ['http://n1'], fetch, retry: { ...fast, attempts: 3 } })
    await expect(client.call('ns', 'a', 'get', undefined, { readonly: true })).rejects.toMatchObject({
      code: 'ACTORMESH_ACTOR_BUSY',
    })
    expect(seen).toHaveLength(3)
  })

  it('falls back to /v1/namespaces once when a node does not know /v1/ns, and remembers it', async () => {
    const noRoute = answer(404, { code: 'ACTORMESH_NOT_FOUND', message: 'No route' })
    const { fetch, seen } = scriptedFetch([noRoute, answer(200, 'a'), answer(200, 'b')])
    const client = new ActorMeshClient({ nodes: ['http://n1/'], fetch, retry: { ...fast, attempts: 1 } })
    expect((await client.call('my ns', 'x/y', 'get')).text()).toBe('a')
    expect((await client.call('my ns', 'x/y', 'get')).text()).toBe('b')
    expect(seen.map((s) => s.url)).toEqual([
      'http://n1/v1/ns/my%20ns/actors/x%2Fy/get',
      'http://n1/v1/namespaces/my%20ns/actors/x%2Fy/get',
      'http://n1/v1/namespaces/my%20ns/actors/x%2Fy/get',
    ])
  })

  it('sends readonly, consistency, token and traceparent; a readonly call has no key', async () => {
    const { fetch, seen } = scriptedFetch([answer(200, '3', { 'x-actormesh-replayed': 'true' })])
    const client = new ActorMeshClient({ nodes: ['https://n1:8443'], fetch, token: 's3cret' })
    const trace = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    const out = await client.call('ns', 'a', 'get', new Uint8Array([1, 2]), {
      readonly: true,
      consistency: 'stale',
      traceparent: trace,
    })
    expect(out.replayed).toBe(true)
    expect(seen[0]!.url).toBe('https://n1:8443/v1/ns/ns/actors/a/get?readonly=true&consistency=stale')
    expect(Object.fromEntries(seen[0]!.headers)).toEqual({
      authorization: 'Bearer s3cret',
      'content-type': 'application/octet-stream',
      traceparent: trace,
    })
  })

  it('aborts the request in flight with the signal’s reason', async () => {
    let started!: () => void
    const inFlight = new Promise<void>((r) => {
      started = r
    })
    const hanging = ((_: unknown, init?: RequestInit) =>
      new Promise((_resolve, reject) => {
        started()
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason))
      })) as typeof fetch
    const client = new ActorMeshClient({ nodes: ['http://n1'], fetch: hanging })
    const ac = new AbortController()
    const pending = client.call('ns', 'a', 'm', undefined, { signal: ac.signal })
    await inFlight
    const reason = new Error('user went away')
    ac.abort(reason)
    await expect(pending).rejects.toBe(reason)
  })

  it('rejects with the signal’s reason when aborted during backoff while every node is down (real sockets)', async () => {
    const nodes = [await closedPort(), await closedPort()]
    const ac = new AbortController()
    let waiting!: () => void
    const backingOff = new Promise<void>((r) => {
      waiting = r
    })
    const client = new ActorMeshClient({
      nodes,
      // A wait of minutes: only the abort can end this call before the test times out.
      retry: { attempts: 1_000, baseMs: 600_000, maxMs: 600_000 },
      random: () => 0.9,
      onRetry: (e) => {
        expect(e.error.code).toBe('ACTORMESH_CLIENT_UNREACHABLE')
        waiting()
      },
    })
    const pending = client.call('ns', 'a', 'increment', undefined, { signal: ac.signal })
    await backingOff
    const reason = new Error('stop now')
    ac.abort(reason)
    await expect(pending).rejects.toBe(reason)
    await expect(client.call('ns', 'a', 'm', undefined, { signal: ac.signal })).rejects.toBe(reason)
  }, 30_000)
})

/** A scripted WebSocket: the test sends its frames and decides how it closes. */
class FakeSocket {
  closedWith: { code: number; reason: string } | undefined
  private readonly listeners: Record<string, Array<(e: never) => void>> = {}

  constructor(
    readonly url: string,
    readonly init: { headers: Record<string, string> } | undefined,
    sockets: FakeSocket[],
  ) {
    sockets.push(this)
  }

  addEventListener(type: string, fn: (e: never) => void): void {
    this.listeners[type] ??= []
    this.listeners[type].push(fn)
  }

  close(code = 1000, reason = ''): void {
    this.end(code, reason)
  }

  /** What the client sent, parsed. */
  readonly sent: Array<Record<string, unknown>> = []

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>)
  }

  /** A frame from the node. */
  serve(frame: unknown): void {
    for (const fn of this.listeners.message ?? []) fn({ data: JSON.stringify(frame) } as never)
  }

  /** The connection ends (1006: it died without a close). */
  end(code = 1006, reason = ''): void {
    if (this.closedWith) return
    this.closedWith = { code, reason }
    queueMicrotask(() => {
      for (const fn of this.listeners.close ?? []) fn({ code, reason } as never)
    })
  }
}

function fakeSockets(): { sockets: FakeSocket[]; WebSocket: WebSocketConstructor } {
  const sockets: FakeSocket[] = []
  const WebSocket = function (this: unknown, url: string, init?: { headers: Record<string, string> }) {
    return new FakeSocket(url, init, sockets)
  } as unknown as WebSocketConstructor
  return { sockets, WebSocket }
}

const post = (seq: number, pos: string) => ({ event: JSON.stringify({ seq }), pos })

describe('client subscriptions (scripted WebSocket)', () => {
  const fast = { attempts: 3, baseMs: 1, maxMs: 2 }
  const nth = async (sockets: FakeSocket[], n: number) =>
    waitFor(
      () => sockets[n],
      () => `socket ${n}`,
    )

  it('reconnects to the next node after a drop, resuming after the last position received', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({
      nodes: ['http://n1', 'https://n2'],
      WebSocket,
      retry: fast,
      token: 't',
    })
    const sub = client.subscribe('chat', 'r 1')
    const s0 = await nth(sockets, 0)
    expect(s0.url).toBe('ws://n1/v1/ns/chat/actors/r%201/ws')
    expect(s0.init).toEqual({ headers: { authorization: 'Bearer t' } })
    s0.serve({ ready: true, pos: '10' })
    expect(await sub.ready()).toBe('10')
    s0.serve(post(1, '11.0'))
    s0.serve(post(2, '11.1'))
    expect((await sub.next()).value?.pos).toBe('11.0')
    s0.end(1006)
    const s1 = await nth(sockets, 1)
    expect(s1.url).toBe('wss://n2/v1/ns/chat/actors/r%201/ws?after=11.1')
    s1.serve({ ready: true, pos: '11.1' })
    s1.serve(post(3, '12.0'))
    const rest: ActorEvent[] = []
    for await (const e of sub) {
      rest.push(e)
      if (rest.length === 2) break
    }
    expect(rest.map((e) => [e.pos, e.json()])).toEqual([
      ['11.1', { seq: 2 }],
      ['12.0', { seq: 3 }],
    ])
    expect(s1.closedWith).toEqual({ code: 1000, reason: 'client closed' })
    expect(sub.pos).toBe('12.0')
  })

  it('throws ACTORMESH_EVENTS_GONE with the buffer’s reach, and does not reconnect', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({ nodes: ['http://n1', 'http://n2'], WebSocket, retry: fast })
    const sub = client.subscribe('chat', 'r', { after: '3.0', encoding: 'base64' })
    const s0 = await nth(sockets, 0)
    expect(s0.url).toBe('ws://n1/v1/ns/chat/actors/r/ws?after=3.0&encoding=base64')
    s0.serve({ error: 'ACTORMESH_EVENTS_GONE', message: 'reaches back only to 40', since: '40' })
    s0.end(4410, 'events gone')
    await expect(sub.next()).rejects.toMatchObject({
      code: 'ACTORMESH_EVENTS_GONE',
      message: 'reaches back only to 40',
      details: { since: '40', closeCode: 4410 },
    })
    expect(await sub.next()).toEqual({ value: undefined, done: true })
    expect(sockets).toHaveLength(1)
  })

  it('hands over the queued events, then ACTORMESH_CLIENT_QUEUE_FULL, when the consumer falls behind', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({ nodes: ['http://n1'], WebSocket, retry: fast, queueEventsMax: 2 })
    const sub = client.subscribe('chat', 'r')
    const s0 = await nth(sockets, 0)
    s0.serve({ ready: true, pos: '5' })
    s0.serve({ event: 'AAEC', encoding: 'base64', pos: '6.0' })
    s0.serve(post(2, '7.0'))
    s0.serve(post(3, '8.0'))
    expect(s0.closedWith).toEqual({ code: 4000, reason: 'client queue full' })
    expect((await sub.next()).value?.data).toEqual(new Uint8Array([0, 1, 2]))
    expect((await sub.next()).value?.pos).toBe('7.0')
    await expect(sub.next()).rejects.toMatchObject({
      code: 'ACTORMESH_CLIENT_QUEUE_FULL',
      details: { pos: '7.0' },
    })
    expect(sub.pos).toBe('7.0')
  })

  it('gives up with ACTORMESH_CLIENT_UNREACHABLE when no socket gets subscribed within retry.attempts', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({ nodes: ['http://n1', 'http://n2'], WebSocket, retry: fast })
    const sub = client.subscribe('chat', 'r')
    const ready = sub.ready()
    for (let i = 0; i < fast.attempts; i++) (await nth(sockets, i)).end(1006)
    await expect(ready).rejects.toMatchObject({ code: 'ACTORMESH_CLIENT_UNREACHABLE', retryable: true })
    await expect(sub.next()).rejects.toMatchObject({ code: 'ACTORMESH_CLIENT_UNREACHABLE' })
    expect(sockets.map((s) => new URL(s.url).host)).toEqual(['n1', 'n2', 'n1'])
  })

  it('gives up on a socket that is not subscribed within timeoutMs and tries the next node', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({
      nodes: ['http://n1', 'http://n2'],
      WebSocket,
      retry: fast,
      timeoutMs: 20,
    })
    const sub = client.subscribe('chat', 'r')
    const s1 = await nth(sockets, 1)
    expect(sockets[0]!.closedWith).toEqual({ code: 1000, reason: 'not subscribed in time' })
    expect(new URL(s1.url).host).toBe('n2')
    s1.serve({ ready: true, pos: '9' })
    expect(await sub.ready()).toBe('9')
    sub.close()
  })

  it('calls over the socket and sends a call in flight again, same key, on the next socket after a drop', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({ nodes: ['http://n1', 'http://n2'], WebSocket, retry: fast })
    const sub = client.subscribe('chat', 'r')
    const pending = sub.call('post', { from: 'ann', text: 'hi' }) // waits for a subscribed socket
    const s0 = await nth(sockets, 0)
    s0.serve({ ready: true, pos: '5' })
    await waitFor(
      () => s0.sent.length === 1,
      () => 'the call on the first socket',
    )
    const first = s0.sent[0]!
    expect(first).toMatchObject({ id: 1, method: 'post', payload: '{"from":"ann","text":"hi"}' })
    expect(first.key).toMatch(/^[0-9a-f]{32}$/)
    s0.end(1006)
    const s1 = await nth(sockets, 1)
    s1.serve({ ready: true, pos: '5' })
    await waitFor(
      () => s1.sent.length === 1,
      () => 'the call again on the second socket',
    )
    expect(s1.sent[0]).toEqual({ ...first, id: 2 })
    s1.serve({ id: 2, ok: true, reply: '7', servedBy: 'peer-2', replayed: true })
    expect(await pending).toMatchObject({ servedBy: 'peer-2', replayed: true })
    expect((await pending).json()).toBe(7)
    // Bytes travel as base64; a failure the node does not call retryable is thrown as is.
    const failing = sub.call('post', new Uint8Array([0, 255]), { idempotencyKey: 'k' })
    await waitFor(
      () => s1.sent.length === 2,
      () => 'the second call',
    )
    expect(s1.sent[1]).toEqual({ id: 3, method: 'post', payload: 'AP8=', encoding: 'base64', key: 'k' })
    s1.serve({
      id: 3,
      ok: false,
      code: 'ACTORMESH_ACTOR_FAILED',
      message: "'x' has not joined",
      retryable: false,
    })
    await expect(failing).rejects.toMatchObject({
      code: 'ACTORMESH_ACTOR_FAILED',
      message: "'x' has not joined",
    })
    sub.close()
    await expect(sub.call('get', undefined, { readonly: true })).rejects.toThrow(/closed/)
  })

  it('uses no Node module, so a bundler can ship it to a browser', () => {
    const dir = join(import.meta.dirname, '..', '..', 'node', 'client')
    const imports: string[] = []
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(dir, file), 'utf8')
      for (const m of source.matchAll(/^(?:import|export)\b[^']*?\bfrom '([^']+)'/gm))
        imports.push(`${file}: ${m[1]}`)
      expect(source).not.toMatch(/\b(?:Buffer|process|NodeJS|require)\b/)
    }
    expect(imports).toContain('index.ts: ./subscription.js')
    expect(imports.filter((i) => !/: \.\/[a-z-]+\.js$/.test(i))).toEqual([])
  })

  it('rejects a pending next() with the abort reason and closes the socket', async () => {
    const { sockets, WebSocket } = fakeSockets()
    const client = new ActorMeshClient({ nodes: ['http://n1'], WebSocket, retry: fast })
    const ac = new AbortController()
    const sub = client.subscribe('chat', 'r', { signal: ac.signal })
    const s0 = await nth(sockets, 0)
    s0.serve({ ready: true, pos: '5' })
    const pending = sub.next()
    const reason = new Error('leaving the page')
    ac.abort(reason)
    await expect(pending).rejects.toBe(reason)
    expect(s0.closedWith?.code).toBe(1000)
    expect(() => client.subscribe('chat', 'r', { signal: ac.signal })).toThrow(reason)
  })
})

describe('client against three node processes', () => {
  const cluster = new ProcessCluster()
  let nodes: ClusterNode[] = []
  const retry = { attempts: 40, baseMs: 100, maxMs: 2_000 }

  beforeAll(async () => {
    await cluster.start(3)
    nodes = [...cluster.nodes]
    await createNamespace(nodes[0]!, 'counter')
    await deploy(nodes[1]!, 'counter', await exampleModule('counter'))
    await createNamespace(nodes[0]!, 'chat')
    await deploy(nodes[2]!, 'chat', await exampleModule('chat'))
    for (const room of ['r', 'json']) await call(nodes[0]!, 'chat', room, 'join', 'ann')
    await createNamespace(nodes[0]!, 'loud')
    await deploy(nodes[1]!, 'loud', await fixtureModule('misbehaving'))
  }, 180_000)
  afterAll(() => cluster.stop())

  it('reaches one counter through each node, with text and JSON helpers', async () => {
    const replies: string[] = []
    const servedBy = new Set<string>()
    for (const node of nodes) {
      const client = new ActorMeshClient({ nodes: [node.url], retry, random: seededRandom(SEED) })
      const out = await client.call('counter', 'c1', 'increment')
      replies.push(out.text())
      servedBy.add(out.servedBy)
    }
    expect(replies).toEqual(['1', '2', '3'])
    // The namespace leader ran every call (the leader balancer may move it between them).
    expect([...servedBy].every((peer) => nodes.some((n) => n.peer === peer))).toBe(true)
    const client = new ActorMeshClient({ nodes: nodes.map((n) => n.url), retry })
    expect((await client.call('counter', 'c1', 'increment', '10')).json()).toBe(13)
    expect((await client.call('counter', 'c1', 'get', undefined, { readonly: true })).json()).toBe(13)
    const seq = await client.call('chat', 'json', 'post', { from: 'ann', text: 'hello' })
    expect(seq.json()).toBe(1)
    const history = await client.call('chat', 'json', 'history', undefined, { readonly: true })
    expect(history.json<Array<{ seq: number; text: string }>>()).toMatchObject([{ seq: 1, text: 'hello' }])
    await expect(client.call('nope', 'a', 'get')).rejects.toMatchObject({
      code: 'ACTORMESH_NAMESPACE_NOT_FOUND',
      status: 404,
      retryable: false,
    })
  }, 60_000)

  it('succeeds when the first node URL is dead, and then stays on the live node', async () => {
    const dead = await closedPort()
    const retries: RetryEvent[] = []
    const client = new ActorMeshClient({
      nodes: [dead, nodes[1]!.url],
      retry,
      random: seededRandom(SEED),
      onRetry: (e) => retries.push(e),
    })
    expect((await client.call('counter', 'c-failover', 'increment')).text()).toBe('1')
    expect((await client.call('counter', 'c-failover', 'increment')).text()).toBe('2')
    const [first, ...rest] = retries
    expect([first?.node, first?.error.code]).toEqual([dead, 'ACTORMESH_CLIENT_UNREACHABLE'])
    // The leader balancer may move the namespace's leader meanwhile (seen once: a call answered
    // ACTORMESH_NOT_APPLIED, retryable): such retries go to the live node, never the dead one again.
    for (const r of rest) expect([r.node, r.error.retryable]).toEqual([nodes[1]!.url, true])
  }, 60_000)

  it('kill -9 of a node: its subscriber resumes on another node with no gap or duplicate, and writes in flight to the namespace it led run exactly once', async () => {
    const view = await waitFor(
      async () => {
        const list = (await getJson(`${nodes[0]!.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }
        const ns = list.namespaces.find((n) => n.name === 'counter')
        return ns?.leader ? ns : undefined
      },
      () => 'a leader of the counter namespace',
    )
    // A leads the counter; the subscriber connects to A first; posts go through the others only.
    const a = nodes.find((n) => n.peer === view.leader)!
    const others = nodes.filter((n) => n !== a)
    const subRetries: RetryEvent[] = []
    const subscriber = new ActorMeshClient({
      nodes: [a, ...others].map((n) => n.url),
      retry,
      random: seededRandom(SEED),
      onRetry: (e) => subRetries.push(e),
    })
    const sub = subscriber.subscribe('chat', 'r')
    await sub.ready()
    const seen: ActorEvent[] = []
    const consuming = (async () => {
      for await (const e of sub) seen.push(e)
    })()

    const poster = new ActorMeshClient({
      nodes: others.map((n) => n.url),
      retry,
      random: seededRandom(SEED + 1),
    })
    const acked: number[] = []
    let stopPosting = false
    const posting = (async () => {
      for (let i = 0; !stopPosting; i++) {
        acked.push((await poster.call('chat', 'r', 'post', { from: 'ann', text: `p${i}` })).json<number>())
      }
    })()
    // Three writers to the counter, A first in their list: in flight when A dies, then retried
    // elsewhere with their generated keys.
    const writerRetries: RetryEvent[] = []
    const writer = new ActorMeshClient({
      nodes: [a, ...others].map((n) => n.url),
      retry,
      random: seededRandom(SEED + 2),
      onRetry: (e) => writerRetries.push(e),
    })
    const once = await writer.call('counter', 'c2', 'increment', '100', { idempotencyKey: 'once' })
    expect(once.replayed).toBe(false)
    let increments = 0
    let stopWriting = false
    const writing = Promise.all(
      [0, 1, 2].map(async () => {
        while (!stopWriting) {
          await writer.call('counter', 'c2', 'increment')
          increments++
        }
      }),
    )
    await waitFor(
      () => acked.length >= 20 && increments >= 10,
      () => `20 posts (${acked.length}) and 10 increments (${increments}) before the kill`,
      60_000,
    )
    await cluster.kill(a)
    const [postsAtKill, incrementsAtKill] = [acked.length, increments]
    await waitFor(
      () => acked.length >= postsAtKill + 20 && increments >= incrementsAtKill + 10,
      () =>
        `20 posts (${acked.length - postsAtKill}) and 10 increments (${increments - incrementsAtKill}) after the kill`,
      120_000,
    )
    stopPosting = true
    stopWriting = true
    await Promise.all([posting, writing])

    const last = Math.max(...acked)
    await waitFor(
      () => seen.some((e) => e.json<{ seq: number }>().seq === last),
      () => `the subscriber to see post ${last} (it has ${seen.length})`,
      60_000,
    )
    sub.close()
    await consuming
    // Reconnected away from A, and every post arrived once, in order: 1, 2, 3, … with nothing missing.
    expect(subRetries.length).toBeGreaterThan(0)
    expect(subRetries[0]!.node).toBe(a.url)
    const pos = seen.map((e) => e.pos.split('.').map(Number) as [number, number])
    expect(
      pos.every(
        (p, i) => i === 0 || p[0] > pos[i - 1]![0] || (p[0] === pos[i - 1]![0] && p[1] > pos[i - 1]![1]),
      ),
    ).toBe(true)
    const seqs = seen.map((e) => e.json<{ seq: number }>().seq)
    expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1))
    expect(new Set(acked).size).toBe(acked.length)

    // Every acknowledged increment counted once, and the keyed call of before the kill replays.
    const again = await writer.call('counter', 'c2', 'increment', '100', { idempotencyKey: 'once' })
    expect(again.replayed).toBe(true)
    expect(again.text()).toBe(once.text())
    const count = await writer.call('counter', 'c2', 'get', undefined, { readonly: true })
    expect(count.json()).toBe(100 + increments)
    // The writers did go through a retry: A was first in their list and stopped answering.
    expect(
      writerRetries.some((r) => r.node === a.url && r.error.code === 'ACTORMESH_CLIENT_UNREACHABLE'),
    ).toBe(true)
  }, 300_000)

  it('calls over the subscription’s socket and sees its own broadcast', async () => {
    const client = new ActorMeshClient({ nodes: cluster.nodes.map((n) => n.url), retry })
    const sub = client.subscribe('chat', 'json')
    const seq = (await sub.call('post', { from: 'ann', text: 'over the socket' })).json<number>()
    const history = await sub.call('history', undefined, { readonly: true, consistency: 'stale' })
    expect(history.json<Array<{ seq: number }>>().map((m) => m.seq)).toContain(seq)
    const { value } = await sub.next()
    expect(value!.json()).toMatchObject({ seq, text: 'over the socket' })
    await expect(sub.call('post', { from: 'nobody', text: 'x' })).rejects.toMatchObject({
      code: 'ACTORMESH_ACTOR_FAILED',
      retryable: false,
    })
    sub.close()
  }, 60_000)

  it('ends a subscription with ACTORMESH_EVENTS_GONE when the buffer no longer reaches back', async () => {
    const client = new ActorMeshClient({ nodes: cluster.nodes.map((n) => n.url), retry })
    const first = client.subscribe('loud', 'speaker')
    await first.ready()
    await client.call('loud', 'speaker', 'loud')
    const { value: event } = await first.next()
    first.close()
    // Binary broadcasts arrive as bytes (base64 on the wire).
    expect(event!.data).toEqual(new Uint8Array(64 * 1024))
    // 64 KiB a broadcast: 80 of them push the first out of the 4 MiB per-actor buffer.
    for (let i = 0; i < 80; i += 10)
      await Promise.all(Array.from({ length: 10 }, () => client.call('loud', 'speaker', 'loud')))
    const stale = client.subscribe('loud', 'speaker', { after: event!.pos })
    const err = await (async () => {
      for await (const e of stale) throw new Error(`unexpected event at ${e.pos}`)
    })().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ActorMeshError)
    expect(err).toMatchObject({ code: 'ACTORMESH_EVENTS_GONE', retryable: false })
    expect((err as ActorMeshError).details.since).toMatch(/^\d+(\.\d+)?$/)
  }, 120_000)

  // Last: the first token turns access control on for the whole cluster.
  it('sends its bearer token on calls and on the WebSocket upgrade; without one a call fails at once with 401', async () => {
    const live = cluster.nodes
    const made = await fetch(`${live[0]!.url}/v1/tokens`, {
      method: 'POST',
      body: JSON.stringify({ namespace: 'chat' }),
    })
    expect(made.status).toBe(201)
    const { token } = (await made.json()) as { token: string }
    for (const node of live) {
      const anonymous = new ActorMeshClient({ nodes: [node.url], retry })
      const refusal = await waitFor(
        () =>
          anonymous.call('chat', 'tok', 'history', undefined, { readonly: true }).then(
            () => undefined,
            (e: unknown) => e,
          ),
        () => `the token to be applied on ${node.url}`,
      )
      expect(refusal).toMatchObject({ code: 'ACTORMESH_UNAUTHENTICATED', status: 401, retryable: false })
    }
    const client = new ActorMeshClient({ nodes: live.map((n) => n.url), retry, token })
    await client.call('chat', 'tok', 'join', 'ann')
    const sub = client.subscribe('chat', 'tok')
    await sub.ready()
    const seq = (await client.call('chat', 'tok', 'post', { from: 'ann', text: 'with a token' })).json()
    const { value } = await sub.next()
    sub.close()
    expect(value!.json()).toMatchObject({ seq, text: 'with a token' })
    await expect(client.call('counter', 'c1', 'get', undefined, { readonly: true })).rejects.toMatchObject({
      code: 'ACTORMESH_FORBIDDEN',
      status: 403,
    })
  }, 60_000)
})
