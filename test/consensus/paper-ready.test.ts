/**
 * §6 membership rules for learners, the Ready contract (what must be durable before a message
 * may leave) and restarts over persisted state (Figure 2, "Persistent state on all servers").
 */
import { describe, expect, it } from 'vitest'
import { ConfChangeType, MessageType, NONE, Role } from '../../consensus/index.js'
import { bytes, TestNetwork } from './harness.js'
import {
  becomeLeaderByHand,
  drain,
  entry,
  makeNode,
  msg,
  ofType,
  PAPER,
  takeReady,
  termsOf,
  useSeed,
} from './paper-helpers.js'

const ABC = ['a', 'b', 'c']

describe('§6 membership: learners', () => {
  it('§6 a learner never starts an election, however long it hears nothing', () => {
    const d = makeNode({ id: 'd', voters: ABC, learners: ['d'], seed: useSeed(41) })
    const out: unknown[] = []
    for (let t = 0; t < 5 * PAPER.electionTicks!; t++) {
      d.node.tick()
      out.push(...drain(d))
    }
    expect(out).toEqual([])
    expect(d.node.status()).toMatchObject({ role: Role.Follower, term: 0 })
  })

  it('§6 a candidate does not ask learners for votes and does not count their grants', () => {
    const a = makeNode({ id: 'a', voters: ABC, learners: ['d', 'e'] })
    a.node.campaign()
    expect(ofType(drain(a), MessageType.Vote).map((m) => m.to)).toEqual(['b', 'c'])
    for (const l of ['d', 'e']) a.node.step(msg({ type: MessageType.VoteResp, from: l, to: 'a', term: 1 }))
    drain(a)
    expect(a.node.status().role).toBe(Role.Candidate)
  })

  it("§6 the leader does not count a learner's acknowledgment toward commit", () => {
    const a = makeNode({ id: 'a', voters: ABC, learners: ['d'] })
    becomeLeaderByHand(a, ABC)
    a.node.step(msg({ type: MessageType.AppResp, from: 'd', to: 'a', term: 1, index: 1 }))
    drain(a)
    expect(a.node.status().commit).toBe(0)
    a.node.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 1, index: 1 }))
    drain(a)
    expect(a.node.status().commit).toBe(1)
  })

  it('§6 a learner receives the log and applies committed entries like any follower', () => {
    const conf = { voters: ABC, learners: ['d'] }
    const net = new TestNetwork([...ABC, 'd'], PAPER, useSeed(42), conf)
    net.elect('a')
    net.propose('a', 'x')
    net.propose('a', 'y')
    net.tickAll(1)
    expect(net.node('d').payloads()).toEqual(['x', 'y'])
    expect(termsOf(net.node('d'))).toEqual(termsOf(net.node('a')))
  })
})

describe('Ready contract: messages leave only with the state they depend on', () => {
  it('Ready: a vote grant travels in the same Ready as the hard state that records the vote', () => {
    const b = makeNode({ id: 'b', voters: ABC, hardState: { term: 1 } })
    drain(b)
    b.node.step(msg({ type: MessageType.Vote, from: 'a', to: 'b', term: 2 }))
    const rd = takeReady(b)
    expect(rd.hardState).toMatchObject({ term: 2, vote: 'a' })
    expect(rd.mustSync).toBe(true)
    expect(ofType(rd.messages, MessageType.VoteResp)).toMatchObject([{ to: 'a', term: 2, reject: false }])
  })

  it("Ready: a candidate's vote requests travel with the hard state that records its new term and self-vote", () => {
    const a = makeNode({ id: 'a', voters: ABC, hardState: { term: 4 } })
    drain(a)
    a.node.campaign()
    const rd = takeReady(a)
    expect(rd.hardState).toMatchObject({ term: 5, vote: 'a' })
    expect(rd.mustSync).toBe(true)
    expect(ofType(rd.messages, MessageType.Vote)).toHaveLength(2)
  })

  it('Ready: an append acknowledgment travels in the same Ready as the entries it acknowledges', () => {
    const b = makeNode({ id: 'b', voters: ABC, hardState: { term: 1 } })
    drain(b)
    b.node.step(
      msg({
        type: MessageType.App,
        from: 'a',
        to: 'b',
        term: 1,
        entries: [entry(1, 1, 'x'), entry(2, 1, 'y')],
      }),
    )
    const rd = takeReady(b)
    expect(rd.entries.map((e) => e.index)).toEqual([1, 2])
    expect(rd.mustSync).toBe(true)
    expect(ofType(rd.messages, MessageType.AppResp)).toMatchObject([{ to: 'a', index: 2, reject: false }])
  })

  // Found by this test and fixed in baa5522: a Ready carrying only a received snapshot said
  // mustSync = false although its AppResp acknowledges the snapshot's index.
  it('Ready: a Ready that carries a received snapshot must be synced before its acknowledgment is sent', () => {
    const b = makeNode({ id: 'b', voters: ABC, hardState: { term: 1 } })
    drain(b)
    const snapshot = { meta: { index: 10, term: 1, conf: { voters: ABC, learners: [] } }, data: bytes('s') }
    b.node.step(msg({ type: MessageType.Snap, from: 'a', to: 'b', term: 1, snapshot }))
    const rd = b.node.ready()
    expect(rd.snapshot?.meta.index).toBe(10)
    expect(ofType(rd.messages, MessageType.AppResp)).toMatchObject([{ to: 'a', index: 10, reject: false }])
    expect(rd.mustSync).toBe(true)
  })

  it('Ready: a leader counts its own copy of an entry toward commit only after a Ready persisted it', () => {
    const a = makeNode({ id: 'a', voters: ['a'] })
    a.node.campaign()
    drain(a)
    a.node.propose(bytes('x'))
    const first = takeReady(a)
    expect(first.entries.map((e) => e.index)).toEqual([2])
    expect(first.committedEntries.map((e) => e.index)).toEqual([])
    const second = takeReady(a)
    expect(second.committedEntries.map((e) => e.index)).toEqual([2])
  })

  it('Ready: messages handed out in one Ready are not handed out again after advance', () => {
    const a = makeNode({ id: 'a', voters: ABC })
    a.node.campaign()
    const rd = takeReady(a)
    expect(ofType(rd.messages, MessageType.Vote)).toHaveLength(2)
    expect(a.node.hasReady()).toBe(false)
  })
})

describe('Restart: persistent state survives a crash', () => {
  it('Restart: a node restarted over its storage keeps its term, vote, log and commit index', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(43))
    net.elect('a')
    net.propose('a', 'x')
    net.propose('a', 'y')
    net.tickAll(1)
    const before = net.raw('b').status()
    const log = termsOf(net.node('b'))
    net.node('b').restart(431)
    const after = net.raw('b').status()
    expect(after).toMatchObject({ term: before.term, vote: before.vote, commit: before.commit })
    expect(after).toMatchObject({ applied: before.applied, lastIndex: before.lastIndex, role: Role.Follower })
    expect(termsOf(net.node('b'))).toEqual(log)
    // Nothing is applied twice: the restarted node was told what it had applied.
    expect(net.raw('b').hasReady()).toBe(false)
    net.propose('a', 'z')
    expect(net.node('b').payloads()).toEqual(['x', 'y', 'z'])
  })

  it('Restart: a node that voted in a term does not vote for another candidate in that term after a restart', () => {
    const b = makeNode({ id: 'b', voters: ABC, hardState: { term: 1 } })
    b.node.step(msg({ type: MessageType.Vote, from: 'a', to: 'b', term: 2 }))
    drain(b)
    b.restart(44)
    expect(b.node.status()).toMatchObject({ term: 2, vote: 'a', lead: NONE })
    b.node.step(msg({ type: MessageType.Vote, from: 'c', to: 'b', term: 2 }))
    expect(ofType(drain(b), MessageType.VoteResp)).toMatchObject([{ to: 'c', reject: true }])
  })

  it('Restart: membership changes applied before a restart survive it', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(45))
    net.elect('a')
    net.addNode('d', PAPER)
    net.raw('a').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' })
    net.settle()
    net.propose('a', 'x')
    net.raw('a').proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'c' })
    net.settle()
    const conf = { voters: ['a', 'b'], learners: ['d'] }
    expect(net.raw('b').status().conf).toEqual(conf)
    for (const id of ['a', 'b']) {
      net.node(id).restart(451)
      expect(net.raw(id).status().conf).toEqual(conf)
    }
    // Restarted from scratch (applied 0), the node replays the changes as it re-applies the log.
    const b = net.node('b')
    b.appliedIndex = 0
    b.applied = []
    b.restart(452)
    expect(net.raw('b').status().conf).toEqual({ voters: ABC, learners: [] })
    drain(b)
    expect(net.raw('b').status().conf).toEqual(conf)
    expect(b.payloads()).toEqual(['x'])
  })
})
