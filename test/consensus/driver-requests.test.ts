import { afterEach, describe, expect, it, onTestFailed } from 'vitest'
import {
  createMultiRaft,
  DriverClosedError,
  GroupConflictError,
  MessageType,
  ProposalOutcomeUnknownError,
  TooManyPendingError,
} from '../../consensus/index.js'
import { TestCluster } from './driver-harness.js'
import { seededRandom } from './harness.js'

const SEED = Number(process.env.SEED ?? 4242)
const bytes = (s: string) => new TextEncoder().encode(s)

let cluster: TestCluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

/** A cluster of a, b, c with `groups` groups, all led by a. */
async function ledByA(groups: number, config = {}) {
  onTestFailed(() => console.error(`driver request test failed with SEED=${SEED}`))
  const c = new TestCluster(['a', 'b', 'c'], SEED, config)
  cluster = c
  const names = c.createGroups(groups)
  for (const g of names) c.member('a').driver.campaign(g)
  await c.tickUntil(() => names.every((g) => c.agreedLeader(g) === 'a'), 50, 'a leads')
  return { c, names }
}

describe('MultiRaft driver requests', () => {
  it('rejects a proposal as outcome unknown when it does not commit within requestTimeoutTicks', async () => {
    const { c } = await ledByA(1, { requestTimeoutTicks: 3 })
    c.hub.cutLink('a', 'b') // b's forwarded proposal never reaches the leader
    const outcome = c
      .member('b')
      .driver.propose('g0', bytes('lost'))
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    for (let i = 0; i < 4; i++) await c.tickAll()
    const err = await outcome
    expect(err).toBeInstanceOf(ProposalOutcomeUnknownError)
    expect((err as ProposalOutcomeUnknownError).reason).toBe('timeout')
  })

  it('rejects with the signal reason when a proposal is aborted, and throws at once when already aborted', async () => {
    const { c } = await ledByA(1)
    c.hub.cutLink('a', 'b')
    const ac = new AbortController()
    const p = c.member('b').driver.propose('g0', bytes('x'), { signal: ac.signal })
    ac.abort(new Error('caller gave up'))
    await expect(p).rejects.toThrow('caller gave up')
    await expect(c.member('a').driver.propose('g0', bytes('y'), { signal: ac.signal })).rejects.toThrow(
      'caller gave up',
    )
  })

  it('throws TooManyPendingError when pendingProposalsMax proposals wait', async () => {
    const { c } = await ledByA(1, { pendingProposalsMax: 4 })
    const a = c.member('a').driver
    const first = Array.from({ length: 4 }, (_, i) => a.propose('g0', bytes(`p${i}`)))
    await expect(a.propose('g0', bytes('one too many'))).rejects.toBeInstanceOf(TooManyPendingError)
    await c.settle()
    await Promise.all(first)
    await expect(a.propose('g0', bytes('room again'))).resolves.toBeGreaterThan(0)
  })

  it('resolves proposals made at the same time on leader and followers with distinct indexes', async () => {
    const { c } = await ledByA(1)
    const ps = c.members.flatMap((m) => [0, 1, 2].map((i) => m.driver.propose('g0', bytes(`${m.id}${i}`))))
    await c.settle()
    const indexes = await Promise.all(ps)
    expect(new Set(indexes).size).toBe(9)
    await c.tickUntil(() => c.members.every((m) => m.sm.payloads('g0').length === 9), 10, 'applied')
    const order = c.member('a').sm.payloads('g0')
    for (const m of c.members) expect(m.sm.payloads('g0')).toEqual(order)
  })

  it('refuses a second createGroup for the same group and requests after close', async () => {
    const { c } = await ledByA(1)
    const a = c.member('a')
    expect(() => a.driver.createGroup('g0', { stateMachine: a.sm })).toThrow(GroupConflictError)
    await a.driver.close()
    await expect(a.driver.propose('g0', bytes('x'))).rejects.toBeInstanceOf(DriverClosedError)
  })

  it('restarts a node over its persisted log store and catches it up', async () => {
    const { c } = await ledByA(2)
    const a = c.member('a').driver
    for (let i = 0; i < 5; i++) await a.propose('g1', bytes(`before${i}`))
    await c.tickUntil(() => c.member('c').sm.payloads('g1').length === 5, 10, 'c applied')
    const old = c.member('c')
    await old.driver.close()
    // Same store and state machine, a new driver and new RawNodes resuming at the applied index.
    const driver = createMultiRaft({
      id: 'c',
      transport: c.hub.endpoint('c'),
      logStore: old.store,
      random: seededRandom(SEED + 1),
      incarnation: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    })
    for (const g of old.store.groups()) {
      driver.createGroup(g, { stateMachine: old.sm, applied: old.sm.appliedIndex.get(g) ?? 0 })
    }
    old.driver = driver
    for (let i = 0; i < 5; i++) await a.propose('g1', bytes(`after${i}`))
    await c.tickUntil(() => old.sm.payloads('g1').length === 10, 20, 'restarted c applied')
    expect(old.sm.payloads('g1')).toEqual(c.member('a').sm.payloads('g1'))
    expect(driver.status('g1').lead).toBe('a')
  })

  it('serves a follower read only after it applied what the leader committed before the read', async () => {
    const { c } = await ledByA(1)
    const a = c.member('a').driver
    await a.propose('g0', bytes('w1'))
    const b = c.member('b')
    const before = b.sm.payloads('g0').length
    const read = b.driver.readIndex('g0')
    await c.settle()
    await read
    expect(before).toBe(0) // b had not learned the commit when the read began
    expect(b.sm.payloads('g0')).toEqual(['w1'])
  })

  it('hands leadership to another node on transferLeadership', async () => {
    const { c } = await ledByA(3)
    c.member('a').driver.transferLeadership('g2', 'c')
    await c.tickUntil(() => c.agreedLeader('g2') === 'c', 30, 'c leads g2')
    expect(c.agreedLeader('g0')).toBe('a')
    await expect(c.member('c').driver.propose('g2', bytes('on c'))).resolves.toBeGreaterThan(0)
  })

  it('confirms every read buffered in one turn with a single ReadIndex round', async () => {
    const { c } = await ledByA(1)
    await c.member('a').driver.propose('g0', bytes('w'))
    let readHeartbeats = 0
    c.hub.onSend = (_from, _to, frame) => {
      for (const { message } of frame.messages)
        if (message.type === MessageType.Heartbeat && message.context) readHeartbeats++
    }
    const reads = Array.from({ length: 50 }, () => c.member('a').driver.readIndex('g0'))
    await c.settle()
    await Promise.all(reads)
    expect(readHeartbeats).toBe(2) // one per follower, for all 50 reads
  })

  it('stops and rejects everything with DriverClosedError when a turn cannot be persisted', async () => {
    const { c } = await ledByA(1)
    const a = c.member('a')
    a.store.persist = async () => {
      throw new Error('disk full')
    }
    const p = a.driver.propose('g0', bytes('never durable'))
    await expect(p).rejects.toBeInstanceOf(DriverClosedError)
    await expect(p).rejects.toThrow('disk full')
    await expect(a.driver.propose('g0', bytes('after'))).rejects.toBeInstanceOf(DriverClosedError)
  })

  it('drops messages for groups it does not host and counts them', async () => {
    const { c } = await ledByA(1)
    const b = c.member('b')
    await b.driver.removeGroup('g0')
    await c.member('a').driver.propose('g0', bytes('a and c still commit'))
    expect(b.driver.stats().messagesDropped).toBeGreaterThan(0)
  })

  it('applies in log order and resolves after apply when the state machine is asynchronous', async () => {
    const { c } = await ledByA(4)
    for (const m of c.members) {
      const apply = m.sm.apply.bind(m.sm)
      m.sm.apply = async (entries, group, index) => {
        await new Promise<void>((resolve) => setImmediate(resolve))
        apply(entries, group, index)
      }
    }
    const a = c.member('a')
    const results = await Promise.all(
      ['g0', 'g1', 'g2', 'g3'].flatMap((g) => [0, 1, 2].map((i) => a.driver.propose(g, bytes(`${g}-${i}`)))),
    )
    expect(results.every((x) => x > 0)).toBe(true)
    for (const g of ['g0', 'g1', 'g2', 'g3']) expect(a.sm.payloads(g)).toEqual([`${g}-0`, `${g}-1`, `${g}-2`])
    await c.tickUntil(() => c.members.every((m) => m.sm.payloads('g3').length === 3), 10, 'replicas applied')
  })
})
