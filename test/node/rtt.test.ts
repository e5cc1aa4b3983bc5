import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createHost, type Host } from '../../node/p2p/host.js'
import { RttTable } from '../../node/p2p/rtt.js'
import { waitFor } from './wait.js'

const log = pino({ level: 'silent' })

interface TestPeer {
  host: Host
  rtt: RttTable
  dir: string
  stopped: boolean
}

const peers: TestPeer[] = []

async function startPeer(seeds: string[] = []): Promise<TestPeer> {
  const dir = await mkdtemp(join(tmpdir(), 'am-rtt-'))
  const host = await createHost({ dataDir: dir, seeds })
  const rtt = new RttTable(host, log, { intervalMs: 100, timeoutMs: 2_000 })
  rtt.start()
  const p = { host, rtt, dir, stopped: false }
  peers.push(p)
  return p
}

async function stopPeer(p: TestPeer): Promise<void> {
  if (p.stopped) return
  p.stopped = true
  await p.rtt.stop()
  await p.host.stop()
}

function id(p: TestPeer): string {
  return p.host.peerId.toString()
}

afterEach(async () => {
  for (const p of peers.splice(0)) {
    await stopPeer(p).catch(() => {})
    await rm(p.dir, { recursive: true, force: true })
  }
})

describe('RTT table over real libp2p on loopback', () => {
  it('measures a finite positive RTT to every connected peer', async () => {
    const a = await startPeer()
    const seed = [a.host.getMultiaddrs()[0]!.toString()]
    const b = await startPeer(seed)
    const c = await startPeer(seed)
    const all = [a, b, c]
    const measured = (p: TestPeer, q: TestPeer): boolean => {
      const ms = p.rtt.rttMs(id(q))
      return ms !== undefined && Number.isFinite(ms) && ms > 0
    }
    // b and c know only a; a's connections to both are enough, and b-c may connect through gossip.
    await waitFor(
      () => measured(a, b) && measured(a, c) && measured(b, a) && measured(c, a),
      'RTTs between the seed and both peers',
    )
    for (const p of all) {
      const snap = p.rtt.snapshot()
      for (const [peer, ms] of Object.entries(snap)) {
        expect(all.map(id)).toContain(peer)
        expect(ms).toBeGreaterThan(0)
        expect(p.rtt.rttMs(peer)).toBe(ms)
      }
      expect(snap).not.toHaveProperty(id(p))
    }
    expect(a.rtt.counters.pings).toBeGreaterThanOrEqual(2)
    expect(a.rtt.nearest([id(b), id(a), id(c)], id(a))).toBe(id(a))
    expect([id(b), id(c)]).toContain(a.rtt.nearest([id(b), id(c)], id(a)))
    expect(a.rtt.nearest([id(c), 'never-seen'], id(a))).toBe(id(c))
  })

  it('forgets a peer that stopped', async () => {
    const a = await startPeer()
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    await waitFor(() => a.rtt.rttMs(id(b)) !== undefined, 'an RTT to b')
    await stopPeer(b)
    await waitFor(() => a.rtt.rttMs(id(b)) === undefined, 'b to be forgotten')
    expect(a.rtt.snapshot()).not.toHaveProperty(id(b))
    expect(a.rtt.nearest([id(b)], id(a))).toBe(id(b))
  })

  it('counts failed pings without throwing when a peer does not answer pings', async () => {
    const a = await startPeer()
    const b = await startPeer()
    await b.rtt.stop()
    await b.host.unhandle('/ipfs/ping/1.0.0')
    await b.host.dial(a.host.getMultiaddrs()[0]!)
    await waitFor(() => a.rtt.failures(id(b)) >= 2, 'two failed pings to b')
    expect(a.rtt.counters.pingFailures).toBeGreaterThanOrEqual(2)
    expect(a.rtt.rttMs(id(b))).toBeUndefined()
    expect(a.rtt.snapshot()).toEqual({})
    expect(a.rtt.nearest([id(b)], id(a))).toBe(id(b))
  })

  it('keeps no timer and sends no ping after stop', async () => {
    const a = await startPeer()
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    await waitFor(() => a.rtt.counters.rounds >= 2 && a.rtt.rttMs(id(b)) !== undefined, 'two rounds')
    await a.rtt.stop()
    const pings = a.rtt.counters.pings
    const rounds = a.rtt.counters.rounds
    // b keeps pinging a for 5 more rounds: a's table would have run many rounds by then.
    const bRounds = b.rtt.counters.rounds
    await waitFor(() => b.rtt.counters.rounds >= bRounds + 5, 'five more rounds of b')
    expect(a.rtt.counters.pings).toBe(pings)
    expect(a.rtt.counters.rounds).toBe(rounds)
    await a.rtt.stop()
  })
})

describe('RTT table bookkeeping', () => {
  async function table(options: ConstructorParameters<typeof RttTable>[2] = {}): Promise<RttTable> {
    // A host that is created but whose table never starts: nothing is pinged.
    const p = await startPeer()
    await p.rtt.stop()
    return new RttTable(p.host, log, options)
  }

  it('orders by smoothed RTT, unmeasured peers last, equals in the given order', async () => {
    const t = await table()
    t.observe('far', 30)
    t.observe('near', 5)
    t.observe('tie-1', 10)
    t.observe('tie-2', 10)
    expect(t.nearest(['unknown', 'far', 'near'], 'me')).toBe('near')
    expect(t.nearest(['tie-2', 'tie-1', 'far'], 'me')).toBe('tie-2')
    expect(t.nearest(['tie-1', 'tie-2', 'far'], 'me')).toBe('tie-1')
    expect(t.nearest(['unknown', 'other-unknown'], 'me')).toBe('unknown')
    expect(t.nearest(['unknown', 'far'], 'me')).toBe('far')
    expect(t.nearest(['far', 'me', 'near'], 'me')).toBe('me')
    expect(t.nearest([], 'me')).toBeUndefined()
  })

  it('smooths samples with an exponentially weighted moving average', async () => {
    const t = await table({ alpha: 0.5 })
    t.observe('p', 10)
    expect(t.rttMs('p')).toBe(10)
    t.observe('p', 20)
    expect(t.rttMs('p')).toBe(15)
    t.observe('p', 5)
    expect(t.rttMs('p')).toBe(10)
    // One slow sample moves the estimate only part of the way, so a better peer stays nearest.
    t.observe('q', 12)
    t.observe('p', 18)
    expect(t.rttMs('p')).toBe(14)
    expect(t.nearest(['p', 'q'], 'me')).toBe('q')
    expect(t.snapshot()).toEqual({ p: 14, q: 12 })
  })

  it('remembers at most peersMax peers, forgetting the oldest', async () => {
    const t = await table({ peersMax: 2 })
    t.observe('a', 1)
    t.observe('b', 2)
    t.observe('c', 3)
    expect(t.snapshot()).toEqual({ b: 2, c: 3 })
  })

  it('rejects bad measurements and options naming the value', async () => {
    const t = await table()
    expect(() => t.observe('p', -1)).toThrow(/-1 ms for 'p'/)
    expect(() => t.observe('p', Number.NaN)).toThrow(RangeError)
    const p = peers[peers.length - 1]!
    expect(() => new RttTable(p.host, log, { alpha: 0 })).toThrow(/alpha 0/)
    expect(() => new RttTable(p.host, log, { pingsInFlightMax: 0 })).toThrow(/0 pings/)
    expect(() => new RttTable(p.host, log, { intervalMs: 0 })).toThrow(/every 0 ms/)
  })
})
