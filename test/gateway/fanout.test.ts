/**
 * The fan-out protocol in one process: three simulated nodes, each with the event buffer its
 * replica fills, a source (FanoutServer) and a subscriber hub (FeedHub), joined by a network
 * that delays, reorders and drops requests by a seeded random source. The clients must see every
 * broadcast after their cursor once, in commit order, across leader changes and a dead leader.
 */
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type AppliedEvents,
  comparePos,
  EventLog,
  formatPos,
  type Pos,
  parsePos,
} from '../../node/ws/events.js'
import { FanoutServer } from '../../node/ws/fanout.js'
import { type FeedClient, type FeedEvent, FeedHub } from '../../node/ws/feeds.js'
import { seededRandom } from '../consensus/harness.js'
import { waitFor } from '../integration/cluster.js'

const log = pino({ level: 'silent' })
const NS = 'room'

class Client implements FeedClient {
  readonly got: Array<{ pos: Pos; data: string }> = []
  readyAt: Pos | undefined
  ended: { gone: Pos } | { slow: string } | undefined
  constructor(
    readonly ns: string,
    readonly actor: string,
    readonly after: Pos | undefined,
  ) {}
  deliver(e: FeedEvent): void {
    this.got.push({ pos: e.pos, data: new TextDecoder().decode(e.data) })
  }
  ready(cursor: Pos): void {
    this.readyAt = cursor
  }
  end(reason: { gone: Pos } | { slow: string }): void {
    this.ended = reason
  }
}

interface Net {
  random: (n: number) => number
  dropPercent: number
  delayMaxMs: number
  down: Set<string>
}

class SimNode {
  readonly events: EventLog
  readonly fanout: FanoutServer
  readonly hub: FeedHub
  constructor(
    readonly id: string,
    peers: Map<string, SimNode>,
    net: Net,
    leader: () => string,
    actorEventsMax: number,
  ) {
    this.events = new EventLog({ actorEventsMax })
    const send = <T>(to: string, run: (node: SimNode) => T): Promise<T> =>
      new Promise((resolve, reject) => {
        setTimeout(
          () => {
            const target = peers.get(to)
            if (net.down.has(to) || net.down.has(this.id) || !target)
              return reject(new Error(`${to} unreachable`))
            // A lost request, or a lost answer: the handler ran but the caller cannot know.
            const lost = to !== this.id && net.random(100) < net.dropPercent
            if (lost && net.random(2) === 0) return reject(new Error('request lost'))
            try {
              const answer = run(target)
              if (lost) reject(new Error('answer lost'))
              else resolve(answer)
            } catch (e) {
              reject(e)
            }
          },
          to === this.id ? 0 : net.random(net.delayMaxMs + 1),
        )
      })
    this.fanout = new FanoutServer(
      {
        self: id,
        events: this.events,
        leader,
        log,
        push: (peer, req) => send(peer, (n) => n.hub.receivePush(id, req)),
      },
      { retryMs: 5, pushEventsMax: 7 },
    )
    this.hub = new FeedHub(
      {
        self: id,
        sub: (peer, req) => send(peer, (n) => n.fanout.subscribe(id, req)),
        unsub: (peer, req) => send(peer, (n) => n.fanout.unsubscribe(id, req)),
        replay: (peer, req) => send(peer, (n) => n.fanout.replay(req)),
        leaderOf: leader,
        voters: () => [...peers.keys()],
        alive: (peer) => !net.down.has(peer),
        log,
      },
      { checkMs: 5, refreshMs: 200, retryMs: 5 },
    )
    this.hub.start()
  }

  private readonly lagging: AppliedEvents[] = []

  /** Applies `entry` after `ms`, but never before the entries handed in earlier (apply order is log order). */
  lag(entry: AppliedEvents, ms: number): void {
    this.lagging.push(entry)
    setTimeout(() => {
      const i = this.lagging.indexOf(entry)
      if (i >= 0) this.apply(this.lagging.splice(0, i + 1))
    }, ms)
  }

  apply(entries: AppliedEvents[]): void {
    const touched = this.events.append(NS, entries)
    this.fanout.appended(NS, touched)
  }

  stop(): void {
    this.hub.stop()
    this.fanout.close()
  }
}

let nodes: SimNode[] = []
afterEach(() => {
  for (const n of nodes) n.stop()
  nodes = []
})

function cluster(seed: number, options: Partial<Net> = {}, actorEventsMax = 1_024) {
  const net: Net = { random: seededRandom(seed), dropPercent: 0, delayMaxMs: 3, down: new Set(), ...options }
  const peers = new Map<string, SimNode>()
  const state = { leader: 'n0' }
  for (const id of ['n0', 'n1', 'n2']) {
    const node = new SimNode(
      id,
      peers,
      net,
      () => (net.down.has(state.leader) ? '' : state.leader),
      actorEventsMax,
    )
    node.events.reset(NS, 0)
    peers.set(id, node)
  }
  nodes = [...peers.values()]
  return { net, state, nodes: nodes as [SimNode, SimNode, SimNode] }
}

/** Broadcasts of actor `a` (and some of `b`), applied on every replica: each entry at `index`. */
function entryAt(index: number, random: (n: number) => number): AppliedEvents {
  const events: Array<{ actor: string; data: Uint8Array }> = []
  for (let n = 1 + random(3); n > 0; n--) {
    const actor = random(4) === 0 ? 'b' : 'a'
    events.push({ actor, data: new TextEncoder().encode(`${actor}@${index}.${events.length}`) })
  }
  return { index, events }
}

function truthOf(entries: AppliedEvents[], actor: string): Array<{ pos: Pos; data: string }> {
  return entries.flatMap((e) =>
    (e.events ?? []).flatMap((ev, n) =>
      ev.actor === actor ? [{ pos: { index: e.index, n }, data: new TextDecoder().decode(ev.data) }] : [],
    ),
  )
}

function expectExactlyAfter(client: Client, truth: Array<{ pos: Pos; data: string }>, label: string): void {
  const start = client.after ?? client.readyAt!
  const want = truth.filter((t) => comparePos(t.pos, start) > 0)
  expect(
    client.got.map((g) => formatPos(g.pos)),
    label,
  ).toEqual(want.map((w) => formatPos(w.pos)))
  expect(
    client.got.map((g) => g.data),
    label,
  ).toEqual(want.map((w) => w.data))
}

const tick = () => new Promise((r) => setTimeout(r, 1))

describe('the source side', () => {
  it('refuses interests beyond interestsMax, forgets a dead node, and serves only as leader', () => {
    const events = new EventLog()
    events.reset(NS, 0)
    let leader = 'n0'
    const fanout = new FanoutServer(
      { self: 'n0', events, leader: () => leader, log, push: () => new Promise(() => {}) },
      { interestsMax: 2 },
    )
    const sub = (peer: string, actor: string) =>
      fanout.subscribe(peer, { ns: NS, feeds: [{ actor, after: null }] })
    expect(sub('n1', 'a')).toEqual({ feeds: [{ actor: 'a', cursor: parsePos('0') }] })
    sub('n2', 'a')
    sub('n1', 'a') // a re-registration takes no new room
    expect(() => sub('n2', 'b')).toThrow(expect.objectContaining({ code: 'ACTORMESH_WS_INTERESTS_MAX' }))
    fanout.peerGone('n2')
    expect(fanout.stats()).toEqual({ interests: 1, subscribers: 1 })
    sub('n2', 'b')
    leader = 'n1'
    expect(() => sub('n2', 'c')).toThrow(
      expect.objectContaining({ code: 'ACTORMESH_NOT_LEADER', details: { leader: 'n1' } }),
    )
    fanout.close()
  })
})

describe('fan-out between nodes', () => {
  it('delivers every broadcast once, in commit order, to clients on every node through leader changes', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { state, nodes: sim, net } = cluster(seed, { dropPercent: 10, delayMaxMs: 4 })
      const random = seededRandom(seed * 1000)
      const clients: Client[] = []
      for (let i = 0; i < 9; i++) {
        const c = new Client(NS, i % 4 === 0 ? 'b' : 'a', undefined)
        clients.push(c)
        sim[i % 3]!.hub.attach(c)
      }
      await waitFor(
        () => clients.every((c) => c.readyAt),
        () => `seed ${seed}: clients to be ready`,
      )
      const entries: AppliedEvents[] = []
      for (let index = 1; index <= 300; index++) {
        const e = entryAt(index, random)
        entries.push(e)
        // Every replica applies every entry, in order; followers lag a little.
        for (const n of sim) n.lag(e, n.id === state.leader ? 0 : random(3))
        if (index % 100 === 0) state.leader = `n${(Number(state.leader[1]) + 1) % 3}`
        await tick()
      }
      const truth = { a: truthOf(entries, 'a'), b: truthOf(entries, 'b') }
      await waitFor(
        () => clients.every((c) => c.got.length >= truth[c.actor as 'a' | 'b'].length),
        () =>
          `seed ${seed}: every client to get every broadcast (${clients.map((c) => c.got.length)} of ${truth.a.length}/${truth.b.length})`,
      )
      for (const c of clients) expectExactlyAfter(c, truth[c.actor as 'a' | 'b'], `seed ${seed}`)
      expect(net.down.size).toBe(0)
      for (const n of sim) n.stop()
    }
  })

  it('keeps the clients of surviving nodes gapless when the leader dies mid-stream', async () => {
    const { state, nodes: sim, net } = cluster(11, { delayMaxMs: 2 })
    const random = seededRandom(12)
    const clients: Client[] = []
    for (const n of sim) {
      for (let i = 0; i < 2; i++) {
        const c = new Client(NS, 'a', undefined)
        n.hub.attach(c)
        clients.push(c)
      }
    }
    await waitFor(
      () => clients.every((c) => c.readyAt),
      () => 'clients to be ready',
    )
    const entries: AppliedEvents[] = []
    let index = 0
    const applyNext = (on: SimNode[]) => {
      const e = entryAt(++index, random)
      entries.push(e)
      for (const n of on) n.apply([e])
    }
    for (let i = 0; i < 50; i++) {
      applyNext(sim)
      if (i % 5 === 0) await tick()
    }
    // The leader dies: what it applied last, only one follower had applied yet.
    applyNext([sim[0], sim[1]])
    net.down.add('n0')
    sim[0].stop()
    for (const n of [sim[1], sim[2]]) n.apply(entries.slice(-1))
    state.leader = 'n1'
    for (let i = 0; i < 50; i++) {
      applyNext([sim[1], sim[2]])
      if (i % 5 === 0) await tick()
    }
    const truth = truthOf(entries, 'a')
    const survivors = clients.slice(2)
    await waitFor(
      () => survivors.every((c) => c.got.length >= truth.length),
      () => `survivors to get ${truth.length} broadcasts (${survivors.map((c) => c.got.length)})`,
    )
    for (const c of survivors) expectExactlyAfter(c, truth, 'survivor')
  })

  it('lets a client resume after its cursor, and tells one whose cursor the buffer lost that it is gone', async () => {
    const { nodes: sim } = cluster(21, {}, 400)
    const random = seededRandom(22)
    const entries: AppliedEvents[] = []
    for (let index = 1; index <= 600; index++) {
      entries.push(entryAt(index, random))
      for (const n of sim) n.apply(entries.slice(-1))
    }
    const truth = truthOf(entries, 'a')
    // A live feed on n2 first, then clients behind it that must catch up through replays.
    const live = new Client(NS, 'a', undefined)
    sim[2].hub.attach(live)
    await waitFor(
      () => live.readyAt,
      () => 'the live client to be ready',
    )
    const resume = new Client(NS, 'a', truth[truth.length - 150]!.pos)
    const tooOld = new Client(NS, 'a', parsePos('3.0'))
    sim[2].hub.attach(resume)
    sim[2].hub.attach(tooOld)
    const more: AppliedEvents[] = []
    for (let index = 601; index <= 640; index++) {
      more.push(entryAt(index, random))
      for (const n of sim) n.apply(more.slice(-1))
      if (index % 5 === 0) await tick()
    }
    const all = truthOf([...entries, ...more], 'a')
    await waitFor(
      () => resume.got.length >= 149 + truthOf(more, 'a').length && tooOld.ended,
      () => `the resumed client to catch up (${resume.got.length}) and the old one to be told`,
    )
    expectExactlyAfter(resume, all, 'resumed')
    expectExactlyAfter(live, all, 'live')
    expect(tooOld.ended).toHaveProperty('gone')
    expect(tooOld.got).toEqual([])
  })

  it('a new leader whose buffer starts at a snapshot serves cursors after it and answers gone before it', async () => {
    const { state, nodes: sim } = cluster(31)
    sim[1].events.reset(NS, 0)
    const random = seededRandom(32)
    const entries: AppliedEvents[] = []
    const c = new Client(NS, 'a', undefined)
    sim[2].hub.attach(c)
    await waitFor(
      () => c.readyAt,
      () => 'ready',
    )
    for (let index = 1; index <= 20; index++) {
      entries.push(entryAt(index, random))
      for (const n of sim) n.apply(entries.slice(-1))
    }
    await waitFor(
      () => c.got.length >= truthOf(entries, 'a').length,
      () => 'the client to get 20 entries',
    )
    // n1 installs a snapshot at 30 (it missed 21..30), then becomes the leader.
    sim[1].events.reset(NS, 30)
    for (let index = 21; index <= 30; index++) {
      entries.push(entryAt(index, random))
      sim[0].apply(entries.slice(-1))
      sim[2].apply(entries.slice(-1))
    }
    await waitFor(
      () => c.got.length >= truthOf(entries, 'a').length,
      () => 'the client to get 30 entries',
    )
    state.leader = 'n1'
    for (let index = 31; index <= 40; index++) {
      entries.push(entryAt(index, random))
      for (const n of sim) n.apply(entries.slice(-1))
    }
    // The client is at 30 or later: the new leader can serve it, so it is not gone.
    await waitFor(
      () => c.got.length >= truthOf(entries, 'a').length,
      () => 'the client to get 40 entries from the new leader',
    )
    expect(c.ended).toBeUndefined()
    expectExactlyAfter(c, truthOf(entries, 'a'), 'after the snapshot')
    // A client on another node that resumes from before the snapshot: n1 cannot serve it.
    const behind = new Client(NS, 'a', parsePos('10'))
    sim[0].hub.attach(behind)
    await waitFor(
      () => behind.ended,
      () => 'the client behind the snapshot to be told',
    )
    expect(behind.ended).toEqual({ gone: parsePos('30') })
    expect(behind.got).toEqual([])
  })
})
