/**
 * WebSocket fan-out across three real node processes with real `ws` clients: one chat namespace
 * (examples/chat), clients spread over the nodes, posts from every node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exampleModule, fixtureModule } from '../actors/examples.js'
import { call, callOnce, createNamespace, deploy } from '../integration/calls.js'
import { type ClusterNode, getJson, ProcessCluster, waitFor } from '../integration/cluster.js'
import { chatSeq, openSockets, positionsIncrease, RecordingSocket } from './ws-client.js'

const NS = 'chat'
const post = (text: string) => JSON.stringify({ from: 'ann', text })

interface WsStatus {
  ws: { connections: number; feeds: number; interests: number; counters: Record<string, number> }
}
const wsStatus = async (node: ClusterNode) => ((await getJson(`${node.url}/v1/status`)) as WsStatus).ws

async function chatCluster(cluster: ProcessCluster, rooms: string[]): Promise<ClusterNode[]> {
  await cluster.start(3)
  const [a, b] = cluster.nodes as [ClusterNode, ClusterNode]
  await createNamespace(a, NS)
  await deploy(b, NS, await exampleModule('chat'))
  for (const room of rooms) await call(a, NS, room, 'join', 'ann')
  return [...cluster.nodes]
}

/** A post over a socket, retried while the answer is retryable; resolves with its chat seq. */
async function postOverSocket(socket: RecordingSocket, text: string): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const r = await socket.call('post', post(text), `k-${text}`)
    if (r.ok === true) return Number(r.reply)
    if (r.retryable !== true) throw new Error(`post '${text}' failed: ${JSON.stringify(r)}`)
    await new Promise((res) => setTimeout(res, 100))
  }
  throw new Error(`post '${text}' never succeeded`)
}

describe('WebSocket fan-out across three node processes', () => {
  const cluster = new ProcessCluster()
  let nodes: ClusterNode[] = []

  beforeAll(async () => {
    nodes = await chatCluster(cluster, ['r1', 'bad', 'resume'])
    // A namespace whose actor broadcasts 64 KiB a call (the chat actor only takes small posts).
    await createNamespace(nodes[0]!, 'loud')
    await deploy(nodes[2]!, 'loud', await fixtureModule('misbehaving'))
  }, 120_000)
  afterAll(() => cluster.stop())

  it('delivers every post once, in one order, to 300 clients spread over the nodes, posts sent from every node', async () => {
    const clients = await openSockets(nodes, NS, 'r1', 300)
    // Each node registered its feed with the leader once, whatever its number of clients.
    const statuses = await Promise.all(nodes.map(wsStatus))
    expect(statuses.map((s) => s.feeds)).toEqual([1, 1, 1])
    expect(statuses.map((s) => s.interests).reduce((x, y) => x + y)).toBe(3)
    const posters = nodes.map((n) => new RecordingSocket(n, NS, 'r1'))
    await Promise.all(posters.map((p) => p.ready()))
    const texts = Array.from({ length: 30 }, (_, i) => `m${i}`)
    // Half over HTTP, half over WebSocket calls, from every node, a few at a time.
    const seqs: number[] = []
    for (let i = 0; i < texts.length; i += 6) {
      const batch = texts.slice(i, i + 6).map(async (text, j) => {
        const via = (i + j) % 3
        if ((i + j) % 2 === 0)
          return Number((await call(nodes[via]!, NS, 'r1', 'post', post(text), { key: text })).body)
        return postOverSocket(posters[via]!, text)
      })
      seqs.push(...(await Promise.all(batch)))
    }
    expect([...seqs].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    const everyone = [...clients, ...posters]
    await waitFor(
      () => everyone.every((c) => c.events.length >= 30),
      () => `every client to get 30 posts (least: ${Math.min(...everyone.map((c) => c.events.length))})`,
      60_000,
    )
    const order = everyone[0]!.events.map((e) => `${e.pos} ${e.text}`)
    for (const c of everyone) {
      expect(c.events.map((e) => `${e.pos} ${e.text}`)).toEqual(order)
      expect(c.closed).toBeUndefined()
    }
    expect(positionsIncrease(everyone[0]!.events)).toBe(true)
    expect(everyone[0]!.events.map(chatSeq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(new Set(everyone[0]!.events.map((e) => (JSON.parse(e.text) as { text: string }).text))).toEqual(
      new Set(texts),
    )
    for (const c of everyone) c.close()
    // When the last local client leaves, the feeds end and the leader forgets the interests.
    await waitFor(
      async () => (await Promise.all(nodes.map(wsStatus))).every((s) => s.feeds === 0 && s.interests === 0),
      () => 'feeds and interests to be gone',
    )
  }, 180_000)

  it('closes only the socket that sends a malformed frame or an oversized message', async () => {
    const node = nodes[1]!
    const [garbage, big, binary, fine] = [0, 1, 2, 3].map(() => new RecordingSocket(node, NS, 'bad'))
    for (const s of [garbage!, big!, binary!, fine!]) await s.ready()
    garbage!.ws.send('this is not json')
    big!.ws.send(JSON.stringify({ id: 1, method: 'post', payload: 'x'.repeat(3 << 20) }))
    binary!.ws.send(new Uint8Array([1, 2, 3]))
    const closedCodes = await Promise.all(
      [garbage!, big!, binary!].map((s) =>
        waitFor(
          () => s.closed?.code,
          () => 'the socket to close',
        ),
      ),
    )
    expect(closedCodes).toEqual([1007, 1009, 1003])
    expect(garbage!.frames.at(-1)).toMatchObject({ error: 'ACTORMESH_WS_BAD_FRAME' })
    const seq = await postOverSocket(fine!, 'after the bad ones')
    await waitFor(
      () => fine!.events.length === 1,
      () => 'the healthy socket to get its post',
    )
    expect(chatSeq(fine!.events[0]!)).toBe(seq)
    expect(fine!.closed).toBeUndefined()
    fine!.close()
  }, 60_000)

  it('resumes a reconnecting client after its position on another node, and says when the buffer lost it', async () => {
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode]
    const first = new RecordingSocket(a, NS, 'resume')
    await first.ready()
    for (let i = 0; i < 5; i++) await call(b, NS, 'resume', 'post', post(`early${i}`))
    await waitFor(
      () => first.events.length === 5,
      () => 'five posts',
    )
    const last = first.events.at(-1)!.pos
    first.close()
    for (let i = 0; i < 5; i++) await call(c, NS, 'resume', 'post', post(`missed${i}`))
    const again = new RecordingSocket(c, NS, 'resume', last)
    expect(await again.ready()).toBe(last)
    await call(a, NS, 'resume', 'post', post('live'))
    await waitFor(
      () => again.events.length === 6,
      () => `the 5 missed posts and the live one (${again.events.length})`,
    )
    expect(again.events.map((e) => (JSON.parse(e.text) as { text: string }).text)).toEqual([
      'missed0',
      'missed1',
      'missed2',
      'missed3',
      'missed4',
      'live',
    ])
    expect(positionsIncrease([...first.events, ...again.events])).toBe(true)
    // Push the oldest posts out of the leader's buffer (1,024 broadcasts per actor).
    const writer = new RecordingSocket(b, NS, 'resume')
    await writer.ready()
    for (let i = 0; i < 1_100; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => postOverSocket(writer, `bulk${i + j}`)))
    }
    const stale = new RecordingSocket(a, NS, 'resume', first.events[0]!.pos)
    const closed = await waitFor(
      () => stale.closed,
      () => 'the stale client to be told',
    )
    expect(closed.code).toBe(4410)
    expect(stale.frames.at(-1)).toMatchObject({ error: 'ACTORMESH_EVENTS_GONE' })
    expect(stale.events).toEqual([])
    again.close()
    writer.close()
  }, 120_000)

  it('closes a client that stops reading with 1013 while the others keep up', async () => {
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode]
    const slow = new RecordingSocket(b, 'loud', 'speaker')
    const others = [a, b, c].map((n) => new RecordingSocket(n, 'loud', 'speaker'))
    for (const s of [slow, ...others]) await s.ready()
    ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    // Each call broadcasts 64 KiB; the kernel's loopback buffers take megabytes before the node's
    // send queue (1 MiB) grows, so call until the node reports the close.
    let calls = 0
    while ((await wsStatus(b)).counters.slowClosed === 0) {
      if (calls >= 1_000) throw new Error('the slow client was never closed')
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => call(nodes[(calls + i) % 3]!, 'loud', 'speaker', 'loud')),
      )
      calls += 10
      await waitFor(
        () => others.every((o) => o.events.length === calls),
        () => `the other clients to keep up with ${calls} broadcasts`,
      )
    }
    ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    const closed = await waitFor(
      () => slow.closed,
      () => 'the slow client to see its close',
    )
    expect(closed).toEqual({ code: 1013, reason: 'slow consumer' })
    expect(slow.events.length).toBeLessThan(calls)
    expect(positionsIncrease(slow.events)).toBe(true)
    await call(a, 'loud', 'speaker', 'loud')
    await waitFor(
      () => others.every((o) => o.events.length === calls + 1),
      () => 'the others to get one more',
    )
    for (const o of others) {
      expect(o.closed).toBeUndefined()
      expect(positionsIncrease(o.events)).toBe(true)
      expect(o.frames.find((f) => 'event' in f)).toMatchObject({ encoding: 'base64' })
      o.close()
    }
  }, 180_000)
})

describe('WebSocket fan-out through a leader failover', () => {
  const cluster = new ProcessCluster()
  afterAll(() => cluster.stop())

  it('kill -9 of the namespace leader mid-stream: clients of the survivors see no gap and no duplicate', async () => {
    const nodes = await chatCluster(cluster, ['r'])
    const ns = await waitFor(
      async () => {
        const list = (await getJson(`${nodes[0]!.url}/v1/namespaces`)) as {
          namespaces: Array<{ name: string; leader: string }>
        }
        const view = list.namespaces.find((n) => n.name === NS)
        return view?.leader ? view : undefined
      },
      () => 'a leader of the namespace',
    )
    const leader = nodes.find((n) => n.peer === ns.leader)!
    const survivors = nodes.filter((n) => n !== leader)
    const clients = await openSockets(nodes, NS, 'r', 90)
    const watched = clients.filter((c) => c.node !== leader)
    const acked: number[] = []
    let stop = false
    let next = 0
    // Four posters, through the survivors only; each post retried with its idempotency key until acknowledged.
    const poster = async (p: number) => {
      while (!stop) {
        const text = `p${p}-${next++}`
        for (let attempt = 0; ; attempt++) {
          if (attempt > 300) throw new Error(`post ${text} never acknowledged`)
          const via = survivors[attempt % 2]!
          const r = await callOnce(via, NS, 'r', 'post', post(text), { key: text, timeoutMs: 15_000 }).catch(
            () => undefined,
          )
          if (r?.status === 200) {
            acked.push(Number(r.body))
            break
          }
          if (r && r.status !== 503) throw new Error(`post ${text}: ${r.status} ${r.body}`)
          await new Promise((res) => setTimeout(res, 50))
        }
      }
    }
    const posting = Promise.all([0, 1, 2, 3].map(poster))
    await waitFor(
      () => acked.length >= 40,
      () => '40 acknowledged posts before the kill',
    )
    await cluster.kill(leader)
    const atKill = acked.length
    await waitFor(
      () => acked.length >= atKill + 60,
      () => `60 acknowledged posts after the kill (${acked.length - atKill})`,
      90_000,
    )
    stop = true
    await posting
    const last = Math.max(...acked)
    await waitFor(
      () => watched.every((c) => c.events.length > 0 && (chatSeq(c.events.at(-1)!) ?? 0) >= last),
      () =>
        `every client of a survivor to reach post ${last} (least: ${Math.min(...watched.map((c) => chatSeq(c.events.at(-1) ?? { pos: '0', text: '{}' }) ?? 0))})`,
      60_000,
    )
    for (const c of watched) {
      expect(c.closed).toBeUndefined()
      expect(positionsIncrease(c.events)).toBe(true)
      // The room numbers its posts: every client saw 1, 2, 3, … with nothing skipped or repeated.
      const seqs = c.events.map(chatSeq)
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
      expect(seqs.length).toBeGreaterThanOrEqual(last)
    }
    const killedClients = clients.filter((c) => c.node === leader)
    expect(killedClients.every((c) => c.closed !== undefined)).toBe(true)
    // The new leader holds the interests of both survivors; when the other one dies, membership
    // declares it dead and the leader forgets its interest.
    const newLeader = await waitFor(
      async () => {
        for (const n of survivors) if ((await wsStatus(n)).interests === 2) return n
        return undefined
      },
      () => 'the new leader to hold both survivors’ interests',
    )
    await cluster.kill(survivors.find((n) => n !== newLeader)!)
    await waitFor(
      async () => (await wsStatus(newLeader)).interests === 1,
      () => 'the dead node’s interest to be forgotten',
    )
    for (const c of clients) c.close()
  }, 240_000)
})
