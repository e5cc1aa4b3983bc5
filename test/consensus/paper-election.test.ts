/**
 * Raft paper rules for terms and elections (Figure 2 "All Servers", "Followers", "Candidates",
 * RequestVote; §5.1, §5.2, §5.4.1), one test per rule, in the manner of etcd's raft_paper_test.go.
 * Thesis extensions (PreVote, CheckQuorum) are off here; features.test.ts covers them.
 */
import { describe, expect, it } from 'vitest'
import { MessageType, NONE, Role } from '../../consensus/index.js'
import { TestNetwork } from './harness.js'
import {
  becomeLeaderByHand,
  drain,
  logOfTerms,
  makeNode,
  msg,
  ofType,
  PAPER,
  tickUntil,
  useSeed,
} from './paper-helpers.js'

const ABC = ['a', 'b', 'c']

describe('§5.1 terms', () => {
  it.each([
    ['follower', Role.Follower],
    ['candidate', Role.Candidate],
    ['leader', Role.Leader],
  ])('§5.1 a %s that sees a larger term updates its term and reverts to follower', (_name, role) => {
    const a = makeNode({ id: 'a', voters: ABC, hardState: { term: 1 } })
    if (role === Role.Candidate) a.node.campaign()
    if (role === Role.Leader) becomeLeaderByHand(a, ABC)
    drain(a)
    expect(a.node.status().role).toBe(role)
    const newer = a.node.status().term + 1
    a.node.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: newer }))
    drain(a)
    const s = a.node.status()
    expect(s.term).toBe(newer)
    expect(s.role).toBe(Role.Follower)
    expect(s.lead).toBe('b')
    expect(s.vote).toBe(NONE)
  })

  it('§5.1 a server that receives a request with a stale term rejects it', () => {
    const a = makeNode({ id: 'a', voters: ABC, log: logOfTerms([1]), hardState: { term: 3 } })
    drain(a)
    a.node.step(
      msg({ type: MessageType.App, from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [] }),
    )
    a.node.step(msg({ type: MessageType.Vote, from: 'c', to: 'a', term: 2, index: 5, logTerm: 2 }))
    const out = drain(a)
    // The request has no effect: no append, no vote, no new leader.
    const s = a.node.status()
    expect(s).toMatchObject({ term: 3, vote: NONE, lead: NONE, lastIndex: 1 })
    // Nothing it sends back grants or acknowledges; anything it sends carries its newer term.
    for (const m of out) {
      expect(m.term).toBe(3)
      expect(m.type === MessageType.VoteResp && !m.reject).toBe(false)
    }
  })

  it('§5.1 a stale leader learns the newer term from a rejection and steps down (CheckQuorum on)', () => {
    const a = makeNode({ id: 'a', voters: ABC, hardState: { term: 3 }, config: { checkQuorum: true } })
    drain(a)
    a.node.step(msg({ type: MessageType.Heartbeat, from: 'b', to: 'a', term: 2 }))
    const out = drain(a)
    expect(out).toHaveLength(1)
    expect(out[0]).toMatchObject({ to: 'b', term: 3 })
  })
})

describe('§5.2 leader election', () => {
  it('§5.2 a follower that hears nothing for an election timeout becomes a candidate', () => {
    const a = makeNode({ id: 'a', voters: ABC, hardState: { term: 1 }, seed: useSeed(11) })
    drain(a)
    tickUntil(a, () => a.node.status().role !== Role.Follower, 2 * PAPER.electionTicks!)
    expect(a.node.status()).toMatchObject({ role: Role.Candidate, term: 2, vote: 'a' })
  })

  it('§5.2 a candidate votes for itself and sends RequestVote to every other server in parallel', () => {
    const a = makeNode({ id: 'a', voters: ['a', 'b', 'c', 'd', 'e'], log: logOfTerms([1, 2]) })
    a.node.campaign()
    const votes = ofType(drain(a), MessageType.Vote)
    expect(votes.map((m) => m.to).sort()).toEqual(['b', 'c', 'd', 'e'])
    for (const v of votes) expect(v).toMatchObject({ term: 1, index: 2, logTerm: 2 })
    expect(a.node.status().vote).toBe('a')
  })

  it('§5.2 a follower that keeps hearing from the leader does not start an election', () => {
    const a = makeNode({ id: 'a', voters: ABC, hardState: { term: 1 }, seed: useSeed(12) })
    for (let t = 0; t < 5 * PAPER.electionTicks!; t++) {
      a.node.tick()
      a.node.step(msg({ type: MessageType.Heartbeat, from: 'b', to: 'a', term: 1 }))
      drain(a)
    }
    expect(a.node.status()).toMatchObject({ role: Role.Follower, term: 1, lead: 'b' })
  })

  // etcd's TestLeaderElectionInOneRoundRPC: votes granted (true) or rejected (false) by the others.
  it.each([
    [1, [], Role.Leader],
    [3, [true, true], Role.Leader],
    [3, [true], Role.Leader],
    [5, [true, true, true, true], Role.Leader],
    [5, [true, true], Role.Leader],
    [5, [true], Role.Candidate],
    [3, [false, false], Role.Follower],
    [5, [false, false, false], Role.Follower],
    [5, [true, false, false, false], Role.Follower],
    [5, [true, false, false], Role.Candidate],
  ])(
    '§5.2 a candidate in a %i-server cluster with answers %j ends as role %i (majority wins, majority against loses)',
    (size, answers, role) => {
      const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, size)
      const a = makeNode({ id: 'a', voters: ids })
      a.node.campaign()
      drain(a)
      answers.forEach((granted, i) => {
        a.node.step(
          msg({ type: MessageType.VoteResp, from: ids[i + 1]!, to: 'a', term: 1, reject: !granted }),
        )
      })
      drain(a)
      expect(a.node.status().role).toBe(role)
      expect(a.node.status().term).toBe(1)
    },
  )

  it('§5.2 a server counts each voter once, however often its grant arrives', () => {
    const ids = ['a', 'b', 'c', 'd', 'e']
    const a = makeNode({ id: 'a', voters: ids })
    a.node.campaign()
    drain(a)
    for (let i = 0; i < 3; i++) a.node.step(msg({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 1 }))
    drain(a)
    expect(a.node.status().role).toBe(Role.Candidate)
  })

  it('§5.2 each server votes for at most one candidate in a term, first come first served', () => {
    const a = makeNode({ id: 'a', voters: ABC, hardState: { term: 1 } })
    drain(a)
    const answer = (from: string) => {
      a.node.step(msg({ type: MessageType.Vote, from, to: 'a', term: 2 }))
      const resp = ofType(drain(a), MessageType.VoteResp)
      expect(resp).toHaveLength(1)
      return resp[0]!
    }
    expect(answer('b').reject).toBe(false)
    expect(answer('c').reject).toBe(true)
    // A retried request from the candidate we voted for gets the same answer (§5.5).
    expect(answer('b').reject).toBe(false)
    expect(a.node.status()).toMatchObject({ term: 2, vote: 'b' })
  })

  it('§5.2 a candidate rejects a vote request from another candidate of its term (it voted for itself)', () => {
    const a = makeNode({ id: 'a', voters: ABC })
    a.node.campaign()
    drain(a)
    a.node.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 1 }))
    expect(ofType(drain(a), MessageType.VoteResp)).toMatchObject([{ to: 'b', reject: true }])
    expect(a.node.status()).toMatchObject({ role: Role.Candidate, vote: 'a' })
  })

  it('§5.2 granting a vote restarts the election timer of a follower', () => {
    const et = PAPER.electionTicks!
    for (let seed = 1; seed <= 10; seed++) {
      const a = makeNode({ id: 'a', voters: ABC, seed: useSeed(seed) })
      for (let t = 0; t < et - 1; t++) a.node.tick()
      a.node.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 1 }))
      drain(a)
      for (let t = 0; t < et - 1; t++) a.node.tick()
      expect(a.node.status()).toMatchObject({ role: Role.Follower, term: 1, vote: 'b' })
    }
  })

  it('§5.2 a candidate that receives AppendEntries from a leader of its term steps down to follower', () => {
    const a = makeNode({ id: 'a', voters: ABC })
    a.node.campaign()
    drain(a)
    a.node.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 1, index: 0, logTerm: 0 }))
    drain(a)
    expect(a.node.status()).toMatchObject({ role: Role.Follower, term: 1, lead: 'b' })
  })

  it('§5.2 a candidate that neither wins nor loses starts a new election after its timeout', () => {
    const a = makeNode({ id: 'a', voters: ABC, seed: useSeed(13) })
    a.node.campaign()
    drain(a)
    expect(a.node.status().term).toBe(1)
    tickUntil(a, () => a.node.status().term === 2, 2 * PAPER.electionTicks!)
    const votes = ofType(drain(a), MessageType.Vote)
    expect(a.node.status().role).toBe(Role.Candidate)
    expect(votes.map((m) => m.term)).toEqual([2, 2])
  })

  it('§5.2 election timeouts are randomised within [electionTicks, 2 × electionTicks)', () => {
    const et = PAPER.electionTicks!
    const seen = new Set<number>()
    for (let seed = 1; seed <= 60; seed++) {
      useSeed(seed)
      const a = makeNode({ id: 'a', voters: ABC, seed })
      const ticks = tickUntil(a, () => a.node.status().role === Role.Candidate, 2 * et)
      expect(ticks).toBeGreaterThanOrEqual(et)
      expect(ticks).toBeLessThan(2 * et)
      seen.add(ticks)
    }
    // Sixty draws from ten values: a fixed timeout would show one value.
    expect(seen.size).toBeGreaterThan(5)
  })

  it('§5.2 different servers of one cluster draw different election timeouts', () => {
    let differing = 0
    for (let seed = 1; seed <= 10; seed++) {
      useSeed(seed)
      const net = new TestNetwork(['a', 'b', 'c', 'd', 'e'], PAPER, seed)
      const timeouts = new Set<number>()
      for (const n of net.nodes.values()) {
        timeouts.add(tickUntil(n, () => n.node.status().role === Role.Candidate, 2 * PAPER.electionTicks!))
      }
      if (timeouts.size > 1) differing++
    }
    expect(differing).toBeGreaterThanOrEqual(9)
  })

  it('§5.2 randomised timeouts let a cluster elect exactly one leader by ticking alone', () => {
    for (let seed = 1; seed <= 10; seed++) {
      useSeed(seed)
      const net = new TestNetwork(['a', 'b', 'c', 'd', 'e'], PAPER, seed)
      net.tickAll(4 * PAPER.electionTicks!)
      expect(net.leaders()).toHaveLength(1)
      const terms = new Set([...net.nodes.values()].map((n) => n.node.status().term))
      expect(terms.size).toBe(1)
    }
  })
})

describe('§5.4.1 election restriction', () => {
  // The voter's log is terms [1, 2, 2] (last index 3, last term 2).
  it.each([
    ['an older last term and a longer log', 1, 5, true],
    ['an older last term', 1, 3, true],
    ['the same last term and a shorter log', 2, 2, true],
    ['the same last term and the same length', 2, 3, false],
    ['the same last term and a longer log', 2, 4, false],
    ['a newer last term and a shorter log', 3, 1, false],
    ['a newer last term', 3, 3, false],
  ])(
    '§5.4.1 a server votes only for an up-to-date log: a candidate with %s is %s',
    (_what, logTerm, index, rejected) => {
      const a = makeNode({ id: 'a', voters: ABC, log: logOfTerms([1, 2, 2]), hardState: { term: 2 } })
      drain(a)
      a.node.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 3, index, logTerm }))
      const resp = ofType(drain(a), MessageType.VoteResp)
      expect(resp).toHaveLength(1)
      expect(resp[0]!.reject).toBe(rejected)
      expect(a.node.status().vote).toBe(rejected ? NONE : 'b')
    },
  )

  it('§5.4.1 a server with a stale log cannot win an election against up-to-date voters', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(14))
    net.elect('a')
    net.isolate('c')
    net.propose('a', 'x')
    net.heal()
    net.raw('c').campaign()
    net.settle()
    expect(net.raw('c').status().role).not.toBe(Role.Leader)
    expect(net.leaders()).toHaveLength(0)
    // An up-to-date server then wins, and the log keeps 'x'.
    net.elect('b')
    expect(net.leaders()).toEqual(['b'])
    expect(net.node('c').payloads()).toEqual(['x'])
  })
})
