/**
 * Raft paper §8 (client interaction): the leader's no-op and linearizable reads with ReadIndex
 * (thesis §6.4), one test per rule. Thesis extensions are off; lease reads are in features.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { EntryType, MessageType, Role } from '../../consensus/index.js'
import { bytes, TestNetwork, type TestNode, text } from './harness.js'
import {
  ack,
  becomeLeaderByHand,
  drain,
  logOfTerms,
  makeNode,
  msg,
  ofType,
  PAPER,
  takeReady,
  termsOf,
  useSeed,
} from './paper-helpers.js'

const ABC = ['a', 'b', 'c']
const FIVE = ['a', 'b', 'c', 'd', 'e']

function heartbeatAck(leader: TestNode, from: string, context: Uint8Array): void {
  const term = leader.node.status().term
  leader.node.step(msg({ type: MessageType.HeartbeatResp, from, to: leader.id, term, context }))
}

describe('§8 client interaction', () => {
  it('§8 a new leader appends a no-op entry of its term and commits it on every server', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(31))
    net.elect('a')
    const { term, lastIndex } = net.raw('a').status()
    const noop = net.node('a').storage.entries(lastIndex, lastIndex + 1, Infinity)[0]!
    expect(noop).toMatchObject({ term, type: EntryType.Normal })
    expect(noop.data.byteLength).toBe(0)
    expect(net.raw('a').status().commit).toBe(lastIndex)
    net.tickAll(1) // followers learn the commit index from the next AppendEntries or heartbeat
    for (const id of ABC) expect(net.raw(id).status().commit).toBe(lastIndex)
  })

  it('§8 the no-op of a new leader commits the entries of earlier terms it inherited', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(32))
    net.elect('a')
    // 'x' reaches 'b' only and 'a' never hears back, so it is uncommitted when 'a' is cut off.
    net.filter = (m) =>
      !(m.type === MessageType.App && m.to === 'c') && !(m.type === MessageType.AppResp && m.to === 'a')
    net.propose('a', 'x')
    net.heal()
    net.isolate('a')
    expect(net.raw('a').status().commit).toBe(1)
    expect(net.node('b').payloads()).toEqual([])
    net.elect('b')
    expect(net.leaders()).toContain('b')
    expect(net.node('b').payloads()).toEqual(['x'])
    expect(net.node('c').payloads()).toEqual(['x'])
  })

  it('§8 ReadIndex waits until the leader has committed an entry of its current term', () => {
    const a = makeNode({ id: 'a', voters: ABC, log: logOfTerms([1, 1]), hardState: { term: 1 } })
    becomeLeaderByHand(a, ABC)
    const ctx = bytes('read-1')
    a.node.readIndex(ctx)
    expect(ofType(drain(a), MessageType.Heartbeat)).toEqual([])
    expect(a.readStates).toEqual([])
    ack(a, 'b', 3) // commits the no-op (index 3, term 2)
    const beats = ofType(drain(a), MessageType.Heartbeat).filter((m) => m.context !== undefined)
    expect(beats.map((m) => m.to).sort()).toEqual(['b', 'c'])
    expect(a.readStates).toEqual([])
    heartbeatAck(a, 'c', ctx)
    drain(a)
    expect(a.readStates).toEqual([{ index: 3, context: ctx }])
  })

  it('§8 ReadIndex is answered only after a heartbeat round confirms leadership with a majority', () => {
    const a = makeNode({ id: 'a', voters: FIVE })
    becomeLeaderByHand(a, FIVE)
    for (const v of FIVE.slice(1)) ack(a, v, 1)
    drain(a)
    const ctx = bytes('read-2')
    a.node.readIndex(ctx)
    const rd = takeReady(a)
    expect(rd.readStates).toEqual([])
    const beats = ofType(rd.messages, MessageType.Heartbeat)
    expect(beats.map((m) => m.to).sort()).toEqual(['b', 'c', 'd', 'e'])
    for (const m of beats) expect(text(m.context!)).toBe('read-2')
    heartbeatAck(a, 'b', ctx)
    heartbeatAck(a, 'b', ctx) // a duplicate answer is not a second acknowledgment
    drain(a)
    expect(a.readStates).toEqual([])
    heartbeatAck(a, 'c', ctx)
    drain(a)
    expect(a.readStates).toEqual([{ index: 1, context: ctx }])
  })

  it('§8 a leader cut off from the majority never answers a ReadIndex (its commit index may be stale)', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(33))
    net.elect('a')
    net.isolate('a')
    net.raw('a').readIndex(bytes('stale'))
    net.elect('b')
    net.propose('b', 'newer')
    net.tickAll(3)
    expect(net.raw('a').status().role).toBe(Role.Leader)
    expect(net.node('a').readStates).toEqual([])
  })

  it("§8 a follower's ReadIndex is forwarded to the leader and answered with a read point covering every committed write", () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(34))
    net.elect('a')
    net.propose('a', 'x')
    net.propose('a', 'y')
    const commit = net.raw('a').status().commit
    const ctx = bytes('follower-read')
    net.raw('c').readIndex(ctx)
    net.settle()
    expect(net.node('c').readStates).toEqual([{ index: commit, context: ctx }])
    expect(net.node('c').appliedIndex).toBeGreaterThanOrEqual(commit)
    expect(termsOf(net.node('c')).length).toBe(commit)
  })

  // Regression (found by these tests): the ReadIndex round counted learners' acknowledgments. A
  // learner does not vote, so its answer does not show that no other leader exists: with voters
  // {a, b, c} and learner d, a + d made "2 of 3", and a leader cut off from every voter but a
  // learner served stale reads. Only voters' acks count.
  it("§8 (§6) a learner's heartbeat answer does not count toward confirming leadership for a ReadIndex", () => {
    const a = makeNode({ id: 'a', voters: ABC, learners: ['d', 'e'] })
    becomeLeaderByHand(a, ABC)
    for (const v of ['b', 'c']) ack(a, v, 1)
    drain(a)
    const ctx = bytes('read-learner')
    a.node.readIndex(ctx)
    drain(a)
    heartbeatAck(a, 'd', ctx)
    heartbeatAck(a, 'e', ctx)
    drain(a)
    expect(a.readStates).toEqual([])
  })

  it('§8 (§6) a leader cut off from every voter but a learner does not serve a stale ReadIndex', () => {
    const conf = { voters: ABC, learners: ['d'] }
    const net = new TestNetwork([...ABC, 'd'], { electionTicks: 10 }, useSeed(73), conf)
    net.elect('a')
    net.propose('a', 'x')
    net.tickAll(1)
    net.cutLink('a', 'b')
    net.cutLink('a', 'c')
    net.cutLink('b', 'd')
    net.cutLink('c', 'd')
    // 'a' is paused (not ticked) while 'b' and 'c' elect a new leader among themselves.
    const newLeader = () => ['b', 'c'].find((id) => net.raw(id).status().role === Role.Leader)
    for (let t = 0; t < 4 * 10 && !newLeader(); t++) {
      net.raw('b').tick()
      net.raw('c').tick()
      net.settle()
    }
    const leader = newLeader()!
    net.propose(leader, 'new')
    const newCommit = net.raw(leader).status().commit
    net.raw('a').readIndex(bytes('r'))
    net.settle()
    for (const rs of net.node('a').readStates) expect(rs.index).toBeGreaterThanOrEqual(newCommit)
  })
})
