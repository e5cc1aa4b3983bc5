/**
 * The WebSocket server of one node in one process, with real `ws` clients over loopback: the
 * fan-out service is the real one (its own node is the source); calls go to a stand-in router
 * that "commits" each `post` as an applied entry with one broadcast.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { CallReply, CallRequest } from '../../node/actor-host.js'
import { NodeError } from '../../node/errors.js'
import type { NamespaceStateMachine } from '../../node/namespace-group.js'
import type { Rpc, RpcHandler } from '../../node/rpc.js'
import { createWsService, type WsOptions, type WsService } from '../../node/ws/index.js'
import { type PushRequest, type SubRequest, WS_PUSH, WS_SUB } from '../../node/ws/protocol.js'
import { PING_SLICES } from '../../node/ws/server.js'
import { waitFor } from '../integration/cluster.js'

const log = pino({ level: 'silent' })

interface Node {
  url: string
  ws: WsService
  http: Server
  /** Commits a broadcast of `actor` as the next entry. */
  broadcast(actor: string, data: Uint8Array): number
  /** Takes the namespace out of the catalog. */
  deleteNamespace(): void
}

let nodes: Node[] = []
let sockets: WebSocket[] = []

afterEach(async () => {
  for (const s of sockets) s.terminate()
  sockets = []
  for (const n of nodes) {
    n.ws.stop()
    n.http.closeAllConnections()
    await new Promise((r) => n.http.close(r))
  }
  nodes = []
})

async function startNode(options: WsOptions = {}, startIndex = 0, rpc?: Rpc): Promise<Node> {
  let index = startIndex
  const namespaces = new Set(['ns'])
  const fakeRpc =
    rpc ?? ({ handle: () => {}, request: () => Promise.reject(new Error('no peers')) } as unknown as Rpc)
  let service: WsService | undefined
  const broadcast = (actor: string, data: Uint8Array) => {
    index++
    service!.onApplied('ns', [
      { index, entry: { epoch: 'e', seq: index, base: 0, writes: [], events: [{ actor, data }] } },
    ])
    return index
  }
  const call = async (req: CallRequest): Promise<CallReply> => {
    if (req.method === 'post')
      return { reply: new TextEncoder().encode(String(broadcast(req.actor, req.payload))), servedBy: 'n0' }
    if (req.method === 'echo') return { reply: req.payload, servedBy: 'n0' }
    throw new NodeError(
      'ACTORMESH_NO_LEADER',
      `No leader of '${req.namespace}' is known; retry in 250 ms`,
      true,
      {
        retryAfterMs: 250,
      },
    )
  }
  service = createWsService(
    {
      self: 'n0',
      rpc: fakeRpc,
      leaderOf: () => 'n0',
      voters: (ns) => (namespaces.has(ns) ? ['n0'] : undefined),
      alive: () => true,
      call,
      authorize: (req) =>
        req.headers.authorization === 'Bearer nope'
          ? { status: 401, code: 'ACTORMESH_UNAUTHORIZED', message: 'Bad token' }
          : undefined,
      log,
    },
    options,
  )
  service.onHosted('ns', {
    store: { applied: () => ({ index: startIndex, term: 1 }) },
  } as unknown as NamespaceStateMachine)
  const http = createServer((_req, res) => res.writeHead(404).end())
  http.on('upgrade', (req, socket, head) => service!.handleUpgrade(req, socket, head))
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  const node = {
    url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`,
    ws: service,
    http,
    broadcast,
    deleteNamespace: () => namespaces.delete('ns'),
  }
  nodes.push(node)
  return node
}

/** A client that records every frame it gets and how it closed. */
class Client {
  readonly frames: Array<Record<string, unknown>> = []
  closed: { code: number; reason: string } | undefined
  readonly ws: WebSocket
  readonly opened: Promise<void>
  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options)
    sockets.push(this.ws)
    this.ws.on('message', (data) => this.frames.push(JSON.parse(String(data)) as Record<string, unknown>))
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) }
    })
    this.ws.on('error', () => {})
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (d: Buffer) => {
          body += d.toString()
        })
        res.on('end', () =>
          reject(Object.assign(new Error(body), { status: res.statusCode, body: JSON.parse(body) })),
        )
      })
    })
  }
  events(): Array<{ event: string; pos: string; encoding?: string }> {
    return this.frames.filter((f) => 'event' in f) as never
  }
  async ready(): Promise<string> {
    await this.opened
    const f = await waitFor(
      () => this.frames.find((x) => x.ready === true),
      () => 'the ready frame',
    )
    return f.pos as string
  }
  async reply(id: number | string): Promise<Record<string, unknown>> {
    return waitFor(
      () => this.frames.find((f) => f.id === id),
      () => `the reply to call ${id}`,
    )
  }
  async closedWith(): Promise<{ code: number; reason: string }> {
    return waitFor(
      () => this.closed,
      () => 'the socket to close',
    )
  }
}

const route = (node: Node, actor: string, query = '') => `${node.url}/v1/ns/ns/actors/${actor}/ws${query}`

describe('WebSocket server', () => {
  it('sends the actor broadcasts with positions after a ready frame, and answers calls on the socket', async () => {
    const node = await startNode()
    const c = new Client(route(node, 'room'))
    const other = new Client(`${node.url}/v1/namespaces/ns/actors/elsewhere/ws`)
    expect(await c.ready()).toBe('0')
    await other.ready()
    c.ws.send(JSON.stringify({ id: 1, method: 'post', payload: 'hello' }))
    c.ws.send(
      JSON.stringify({
        id: 'b',
        method: 'echo',
        payload: Buffer.from([0xff, 0, 1]).toString('base64'),
        encoding: 'base64',
      }),
    )
    c.ws.send(JSON.stringify({ id: 3, method: 'nope' }))
    expect(await c.reply(1)).toEqual({ id: 1, ok: true, reply: '1', servedBy: 'n0' })
    expect(await c.reply('b')).toEqual({
      id: 'b',
      ok: true,
      reply: '/wAB',
      encoding: 'base64',
      servedBy: 'n0',
    })
    expect(await c.reply(3)).toMatchObject({
      id: 3,
      ok: false,
      code: 'ACTORMESH_NO_LEADER',
      retryable: true,
      retryAfterMs: 250,
    })
    node.broadcast('room', new TextEncoder().encode('second'))
    node.broadcast('room', new Uint8Array([0xff, 0xfe]))
    node.broadcast('room', new Uint8Array([0, 0, 0]))
    await waitFor(
      () => c.events().length === 4,
      () => 'four events',
    )
    expect(c.events()).toEqual([
      { event: 'hello', pos: '1.0' },
      { event: 'second', pos: '2.0' },
      { event: '//4=', encoding: 'base64', pos: '3.0' },
      // Valid UTF-8, but control characters: base64 rather than sixfold JSON escapes.
      { event: 'AAAA', encoding: 'base64', pos: '4.0' },
    ])
    expect(other.events()).toEqual([])
  })

  it('sends base64 throughout when the client asks for it', async () => {
    const node = await startNode()
    const c = new Client(route(node, 'room', '?encoding=base64'))
    await c.ready()
    c.ws.send(JSON.stringify({ id: 1, method: 'post', payload: 'hi' }))
    expect(await c.reply(1)).toMatchObject({ reply: 'MQ==', encoding: 'base64' })
    await waitFor(
      () => c.events().length === 1,
      () => 'the event',
    )
    expect(c.events()[0]).toEqual({ event: 'aGk=', encoding: 'base64', pos: '1.0' })
  })

  it('refuses an unknown namespace, a bad position or encoding, and an unauthorized request before upgrading', async () => {
    const node = await startNode()
    await expect(new Client(`${node.url}/v1/ns/missing/actors/a/ws`).opened).rejects.toMatchObject({
      status: 404,
      body: { code: 'ACTORMESH_NAMESPACE_NOT_FOUND' },
    })
    await expect(new Client(route(node, 'a', '?after=x1')).opened).rejects.toMatchObject({
      status: 400,
      body: { code: 'ACTORMESH_BAD_REQUEST', message: expect.stringContaining("'x1'") },
    })
    await expect(new Client(route(node, 'a', '?encoding=hex')).opened).rejects.toMatchObject({ status: 400 })
    await expect(new Client(`${node.url}/v1/ns/ns/actors/a/nows`).opened).rejects.toMatchObject({
      status: 404,
    })
    await expect(
      new Client(route(node, 'a'), { headers: { authorization: 'Bearer nope' } }).opened,
    ).rejects.toMatchObject({ status: 401, body: { code: 'ACTORMESH_UNAUTHORIZED' } })
    // Without a valid token an unknown namespace looks like any other: 401, not 404.
    await expect(
      new Client(`${node.url}/v1/ns/missing/actors/a/ws`, { headers: { authorization: 'Bearer nope' } })
        .opened,
    ).rejects.toMatchObject({ status: 401, body: { code: 'ACTORMESH_UNAUTHORIZED' } })
  })

  it('closes only the socket that sends a malformed frame, a binary frame or an oversized message', async () => {
    const node = await startNode({ server: { messageBytesMax: 4_096 } })
    const [notJson, badCall, binary, big, fine] = ['a', 'b', 'c', 'd', 'e'].map(
      () => new Client(route(node, 'room')),
    )
    for (const c of [notJson!, badCall!, binary!, big!, fine!]) await c.ready()
    notJson!.ws.send('{"id": 1, "method": ')
    badCall!.ws.send(JSON.stringify({ id: { x: 1 }, method: 'post' }))
    binary!.ws.send(Buffer.from('{"id":1,"method":"post"}'))
    big!.ws.send(JSON.stringify({ id: 1, method: 'post', payload: 'x'.repeat(5_000) }))
    expect((await notJson!.closedWith()).code).toBe(1007)
    expect((await badCall!.closedWith()).code).toBe(1007)
    expect((await binary!.closedWith()).code).toBe(1003)
    expect((await big!.closedWith()).code).toBe(1009)
    expect(notJson!.frames.at(-1)).toMatchObject({ error: 'ACTORMESH_WS_BAD_FRAME' })
    expect(badCall!.frames.at(-1)).toMatchObject({
      error: 'ACTORMESH_WS_BAD_FRAME',
      message: expect.stringContaining('bad id'),
    })
    fine!.ws.send(JSON.stringify({ id: 7, method: 'post', payload: 'still here' }))
    expect(await fine!.reply(7)).toMatchObject({ ok: true })
    await waitFor(
      () => fine!.events().length === 1,
      () => 'the event on the healthy socket',
    )
    expect(fine!.closed).toBeUndefined()
  })

  it('closes a client that stops reading with 1013 once its send queue is full; the others keep up', async () => {
    const node = await startNode({ server: { sendQueueBytesMax: 256 << 10 } })
    const slow = new Client(route(node, 'room'))
    const fast = new Client(route(node, 'room'))
    await slow.ready()
    await fast.ready()
    ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    const chunk = new Uint8Array(64 << 10).fill(97)
    let sent = 0
    // Loopback kernel buffers take megabytes before the server's queue grows: post until it closes.
    while (node.ws.stats().counters.slowClosed === 0) {
      if (sent >= 2_000) throw new Error('the slow client was never closed')
      node.broadcast('room', chunk)
      sent++
      if (sent % 5 === 0) {
        await waitFor(
          () => fast.events().length === sent,
          () => `the fast client to keep up (${fast.events().length}/${sent})`,
        )
      }
    }
    for (let i = 0; i < 5; i++) node.broadcast('room', chunk)
    await waitFor(
      () => fast.events().length === sent + 5,
      () => 'the fast client to get everything',
    )
    ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    expect(await slow.closedWith()).toEqual({ code: 1013, reason: 'slow consumer' })
    expect(slow.events().length).toBeLessThan(sent)
    expect(fast.closed).toBeUndefined()
    expect(fast.events().map((e) => e.pos)).toEqual(Array.from({ length: sent + 5 }, (_, i) => `${i + 1}.0`))
  })

  it('drops a peer that stops answering pings', async () => {
    const node = await startNode({ server: { pingIntervalMs: 100 } })
    const dead = new Client(route(node, 'room'))
    const alive = new Client(route(node, 'room'))
    await dead.ready()
    await alive.ready()
    ;(dead.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    await waitFor(
      () => node.ws.stats().counters.deadDropped >= 1,
      () => 'the silent peer to be dropped',
    )
    expect(node.ws.stats().connections).toBe(1)
    node.broadcast('room', new TextEncoder().encode('x'))
    await waitFor(
      () => alive.events().length === 1,
      () => 'the live peer to get the event',
    )
  })

  it('spreads its pings over the interval instead of pinging every socket at once', async () => {
    const intervalMs = 1_600
    const node = await startNode({ server: { pingIntervalMs: intervalMs } })
    const clients = Array.from({ length: PING_SLICES }, () => new Client(route(node, 'room')))
    await Promise.all(clients.map((c) => c.ready()))
    const firstPing: number[] = []
    for (const c of clients) c.ws.once('ping', () => firstPing.push(performance.now()))
    await waitFor(
      () => firstPing.length === PING_SLICES,
      () => `every socket to be pinged (${firstPing.length} of ${PING_SLICES})`,
    )
    // One slice a tick: the first pings of 16 sockets in 16 slices span 15 ticks of 100 ms.
    const span = Math.max(...firstPing) - Math.min(...firstPing)
    expect(span).toBeGreaterThan(intervalMs / 2)
  })

  it('pushes a broadcast to the other nodes before writing it to its own sockets', async () => {
    const handlers = new Map<string, RpcHandler>()
    // When the push to the other node went out: how many local deliveries had been made by then.
    const deliveredAtPush: number[] = []
    let node: Node | undefined
    const rpc = {
      handle: (method: string, handler: RpcHandler) => handlers.set(method, handler),
      request: async (_peer: string, method: string, req: PushRequest) => {
        expect(method).toBe(WS_PUSH)
        // A libp2p stream write reaches its socket some promise turns after `request` is called.
        for (let turn = 0; turn < 10; turn++) await null
        deliveredAtPush.push(node!.ws.stats().counters.delivered)
        return { cursors: req.feeds.map((f) => [f.actor, null]) } // null: the source forgets n1
      },
    } as unknown as Rpc
    node = await startNode({}, 0, rpc)
    await handlers.get(WS_SUB)!(
      'n1',
      { ns: 'ns', feeds: [{ actor: 'room', after: null }] } satisfies SubRequest,
      new AbortController().signal,
    )
    const local = new Client(route(node, 'room'))
    await local.ready()
    node.broadcast('room', new TextEncoder().encode('x'))
    await waitFor(
      () => local.events().length === 1 && deliveredAtPush.length === 1,
      () => 'the broadcast to reach the local client and the other node',
    )
    expect(deliveredAtPush).toEqual([0])
  })

  it('refuses connections beyond connectionsMax with 503', async () => {
    const node = await startNode({ server: { connectionsMax: 2 } })
    const a = new Client(route(node, 'room'))
    const b = new Client(route(node, 'room'))
    await a.ready()
    await b.ready()
    await expect(new Client(route(node, 'room')).opened).rejects.toMatchObject({
      status: 503,
      body: { code: 'ACTORMESH_WS_CONNECTIONS_MAX' },
    })
    a.ws.close()
    await waitFor(
      () => node.ws.stats().connections === 1,
      () => 'the closed socket to be forgotten',
    )
    await new Client(route(node, 'room')).ready()
  })

  it('resumes a client after its position from the buffer, and tells one the buffer lost that it is gone', async () => {
    const node = await startNode({ events: { actorEventsMax: 5 } })
    const first = new Client(route(node, 'room'))
    await first.ready()
    for (let i = 1; i <= 8; i++) {
      node.broadcast('room', new TextEncoder().encode(`m${i}`))
      await waitFor(
        () => first.events().length === i,
        () => `event ${i}`,
      )
    }
    const resumed = new Client(route(node, 'room', '?after=5.0'))
    expect(await resumed.ready()).toBe('5.0')
    await waitFor(
      () => resumed.events().length === 3,
      () => 'the three events after 5.0',
    )
    expect(resumed.events().map((e) => e.event)).toEqual(['m6', 'm7', 'm8'])
    const old = new Client(route(node, 'room', '?after=2.0'))
    expect(await old.closedWith()).toEqual({ code: 4410, reason: 'events gone' })
    expect(old.frames).toEqual([
      { error: 'ACTORMESH_EVENTS_GONE', message: expect.stringContaining('3.0'), since: '3.0' },
    ])
    node.broadcast('room', new TextEncoder().encode('m9'))
    await waitFor(
      () => resumed.events().length === 4 && first.events().length === 9,
      () => 'the next event on both',
    )
  })

  it('tells sockets behind a restore that their events are gone; later sockets follow the restored actor', async () => {
    const node = await startNode()
    const before = new Client(route(node, 'room'))
    await before.ready()
    node.broadcast('room', new TextEncoder().encode('old'))
    await waitFor(
      () => before.events().length === 1,
      () => 'the first event',
    )
    node.ws.onRestored('ns', 2) // the restore entry is index 2
    node.broadcast('room', new TextEncoder().encode('ignored')) // index 2: applied before the restore
    node.broadcast('room', new TextEncoder().encode('new'))
    expect(await before.closedWith()).toEqual({ code: 4410, reason: 'events gone' })
    expect(before.frames.at(-1)).toMatchObject({ error: 'ACTORMESH_EVENTS_GONE', since: '2' })
    const after = new Client(route(node, 'room', '?after=2'))
    await after.ready()
    await waitFor(
      () => after.events().length === 1,
      () => 'the event after the restore',
    )
    expect(after.events()).toEqual([{ event: 'new', pos: '3.0' }])
  })

  it('closes the sockets of a namespace that was deleted with 4404', async () => {
    const node = await startNode()
    const c = new Client(route(node, 'room'))
    await c.ready()
    node.deleteNamespace()
    expect(await c.closedWith()).toEqual({ code: 4404, reason: 'namespace deleted' })
    expect(c.frames.at(-1)).toMatchObject({ error: 'ACTORMESH_NAMESPACE_NOT_FOUND' })
    expect(node.ws.stats().feeds).toBe(0)
  })

  it('closes every socket with 1001 when the node drains', async () => {
    const node = await startNode()
    const c = new Client(route(node, 'room'))
    await c.ready()
    node.ws.closeAll()
    expect((await c.closedWith()).code).toBe(1001)
    await expect(new Client(route(node, 'room')).opened).rejects.toMatchObject({ status: 503 })
  })
})
