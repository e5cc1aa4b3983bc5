/**
 * Raft paper rules for log replication and safety (Figure 2 AppendEntries, "Rules for Servers";
 * §5.3, §5.4.2, §5.5), one test per rule, in the manner of etcd's raft_paper_test.go.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ConfChangeType,
  type Message,
  MessageType,
  ProposalDroppedError,
  Role,
} from '../../consensus/index.js'
import { bytes, seededRandom, TestNetwork, type TestNode, text } from './harness.js'
import {
  ack,
  becomeLeaderByHand,
  drain,
  entry,
  leaderWithAckedNoop,
  logOfTerms,
  makeNode,
  msg,
  ofType,
  PAPER,
  takeReady,
  termsOf,
  tickUntil,
  useSeed,
} from './paper-helpers.js'

const ABC = ['a', 'b', 'c']
const FIVE = ['a', 'b', 'c', 'd', 'e']
const SEED = 20_251_126

/** A leader of `voters` whose no-op (index 1) every follower has acknowledged. */

function appendTo(node: TestNode, fields: Partial<Message>): Message[] {
  node.node.step(msg({ type: MessageType.App, from: 'leader', to: node.id, term: 2, ...fields }))
  return ofType(drain(node), MessageType.AppResp)
}

describe('§5.3 log replication', () => {
  it('§5.3 the leader appends a command to its log and sends AppendEntries to every follower in parallel', () => {
    const a = leaderWithAckedNoop(ABC)
    a.node.propose(bytes('x'))
    const rd = takeReady(a)
    expect(rd.entries).toEqual([entry(2, 1, 'x')])
    const apps = ofType(rd.messages, MessageType.App)
    expect(apps.map((m) => m.to).sort()).toEqual(['b', 'c'])
    for (const m of apps) {
      expect(m).toMatchObject({ term: 1, index: 1, logTerm: 1, commit: 1 })
      expect(m.entries.map((e) => text(e.data))).toEqual(['x'])
    }
  })

  it('§5.3 the leader commits an entry once a majority holds it, and tells followers the commit index', () => {
    const a = leaderWithAckedNoop(FIVE)
    a.node.propose(bytes('x'))
    drain(a)
    ack(a, 'b', 2)
    expect(drain(a)).toEqual([])
    expect(a.node.status().commit).toBe(1)
    ack(a, 'c', 2)
    const rd = takeReady(a)
    expect(rd.committedEntries.map((e) => text(e.data))).toEqual(['x'])
    expect(a.node.status().commit).toBe(2)
    // Followers that hold the entry are told at once, by heartbeat (its answer may wait); those
    // whose append is in flight are told when they acknowledge it, or by the next heartbeat.
    const beats = ofType(rd.messages, MessageType.Heartbeat)
    expect(beats.map((m) => [m.to, m.commit]).sort()).toEqual([
      ['b', 2],
      ['c', 2],
    ])
    expect(ofType(rd.messages, MessageType.App)).toEqual([])
    ack(a, 'd', 2)
    expect(drain(a).map((m) => [m.type, m.to, m.commit])).toEqual([[MessageType.Heartbeat, 'd', 2]])
    tickUntil(a, () => a.node.hasReady(), 10)
    const later = ofType(drain(a), MessageType.Heartbeat)
    expect(later.map((m) => [m.to, m.commit]).sort()).toEqual([
      ['b', 2],
      ['c', 2],
      ['d', 2],
      ['e', 1],
    ])
  })

  it('§5.3 a leader that commits an entry also commits every entry before it', () => {
    const a = makeNode({ id: 'a', voters: ABC, log: logOfTerms([1, 1]), hardState: { term: 1 } })
    becomeLeaderByHand(a, ABC)
    ack(a, 'b', 3)
    const rd = takeReady(a)
    expect(rd.committedEntries.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 1],
      [3, 2],
    ])
  })

  it('§5.3 a follower applies entries once the leader commit index covers them', () => {
    const b = makeNode({ id: 'b', voters: ABC })
    appendTo(b, { index: 0, logTerm: 0, entries: [entry(1, 2, 'x'), entry(2, 2, 'y')], commit: 1 })
    expect(b.payloads()).toEqual(['x'])
    appendTo(b, { index: 2, logTerm: 2, entries: [], commit: 2 })
    expect(b.payloads()).toEqual(['x', 'y'])
  })

  it('§5.3 every server applies committed entries in log order', () => {
    const net = new TestNetwork(FIVE, PAPER, useSeed(21))
    net.elect('a')
    const sent: string[] = []
    for (let i = 0; i < 20; i++) {
      const payload = `p${i}`
      sent.push(payload)
      net.raw('a').propose(bytes(payload))
      if (i % 3 === 0) net.settle()
    }
    net.settle()
    for (const id of FIVE) expect(net.node(id).payloads()).toEqual(sent)
  })

  it.each([
    ['prevLogIndex 0 always matches', 0, 0, false],
    ['prevLogIndex and prevLogTerm match the committed entry', 1, 1, false],
    ['prevLogIndex and prevLogTerm match the last entry', 2, 2, false],
    ['the entry at prevLogIndex has another term', 2, 1, true],
    ['the log is shorter than prevLogIndex', 3, 3, true],
  ])(
    'Figure 2 AppendEntries receiver: reply false if log does not contain an entry at prevLogIndex whose term matches prevLogTerm (%s)',
    (_case, index, logTerm, rejected) => {
      const b = makeNode({ id: 'b', voters: ABC, log: logOfTerms([1, 2]), hardState: { term: 2, commit: 1 } })
      drain(b)
      const resp = appendTo(b, { index, logTerm, commit: 1 })
      expect(resp).toHaveLength(1)
      expect(resp[0]!.reject).toBe(rejected)
      expect(termsOf(b)).toEqual([1, 2])
    },
  )

  it.each([
    ['appends new entries after a match', 2, 2, [entry(3, 3)], [1, 2, 3]],
    ['deletes a conflicting entry and all that follow it', 1, 1, [entry(2, 3), entry(3, 4)], [1, 3, 4]],
    ['keeps entries it already holds', 0, 0, [entry(1, 1)], [1, 2]],
    ['replaces a conflicting first entry', 0, 0, [entry(1, 3)], [3]],
  ])('Figure 2 AppendEntries receiver: %s', (_case, index, logTerm, entries, terms) => {
    const b = makeNode({ id: 'b', voters: ABC, log: logOfTerms([1, 2]), hardState: { term: 2 } })
    drain(b)
    const resp = appendTo(b, { term: 4, index, logTerm, entries })
    expect(resp[0]!.reject).toBe(false)
    expect(termsOf(b)).toEqual(terms)
  })

  it('Figure 2 AppendEntries receiver: set commitIndex = min(leaderCommit, index of last new entry)', () => {
    const b = makeNode({ id: 'b', voters: ABC, log: logOfTerms([1, 1, 1]), hardState: { term: 1 } })
    drain(b)
    // Entries 2 and 3 are not confirmed by this append, so they must not be committed by it.
    appendTo(b, { index: 1, logTerm: 1, entries: [], commit: 3 })
    expect(b.node.status().commit).toBe(1)
    appendTo(b, { index: 3, logTerm: 1, entries: [entry(4, 2)], commit: 3 })
    expect(b.node.status().commit).toBe(3)
  })

  // Figure 7: the leader of term 8 and follower logs (a)–(f), written as the term of each entry.
  const LEADER_LOG = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
  it.each([
    ['(a) missing one entry', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ['(b) missing many entries', [1, 1, 1, 4]],
    ['(c) one extra entry of the same term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ['(d) extra entries of a newer term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ['(e) missing entries and extra uncommitted ones', [1, 1, 1, 4, 4, 4, 4]],
    ['(f) many conflicting entries of old terms', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
    ['(empty) nothing at all', []],
  ])(
    '§5.3 the leader forces a conflicting follower log to match its own: Figure 7 %s',
    (_case, followerLog) => {
      useSeed(7)
      const a = makeNode({ id: 'a', voters: ABC, log: logOfTerms(LEADER_LOG), hardState: { term: 7 } })
      const followerTerm = Math.max(7, ...followerLog)
      const b = makeNode({
        id: 'b',
        voters: ABC,
        log: logOfTerms(followerLog),
        hardState: { term: followerTerm },
      })
      // 'c' holds the leader's log, so with it 'a' has a majority in every case (even against (d)).
      const c = makeNode({ id: 'c', voters: ABC, log: logOfTerms(LEADER_LOG), hardState: { term: 7 } })
      const net = new TestNetwork([], PAPER)
      for (const n of [a, b, c]) net.nodes.set(n.id, n)
      net.elect('a')
      expect(net.leaders()).toEqual(['a'])
      const term = a.node.status().term
      expect(termsOf(a)).toEqual([...LEADER_LOG, term])
      expect(termsOf(b)).toEqual(termsOf(a))
      net.tickAll(1) // the next heartbeat carries the commit index to a follower that just caught up
      expect(b.node.status().commit).toBe(LEADER_LOG.length + 1)
    },
  )

  it('§5.3 the consistency check: after a rejection the leader retries with an earlier prevLogIndex', () => {
    const a = makeNode({ id: 'a', voters: ABC, log: logOfTerms([1, 1, 2, 2, 2]), hardState: { term: 2 } })
    const b = makeNode({ id: 'b', voters: ABC, log: logOfTerms([1, 1]), hardState: { term: 2 } })
    const c = makeNode({ id: 'c', voters: ABC, log: logOfTerms([1, 1, 2, 2, 2]), hardState: { term: 2 } })
    const net = new TestNetwork([], PAPER)
    for (const n of [a, b, c]) net.nodes.set(n.id, n)
    net.elect('a')
    const toB = net.delivered.filter((m) => m.from === 'a' && m.to === 'b' && m.type === MessageType.App)
    const rejects = net.delivered.filter((m) => m.from === 'b' && m.type === MessageType.AppResp && m.reject)
    expect(rejects.length).toBeGreaterThan(0)
    expect(toB[0]!.index).toBe(5)
    expect(Math.min(...toB.map((m) => m.index))).toBe(2)
    expect(termsOf(b)).toEqual([1, 1, 2, 2, 2, 3])
  })
})

describe('§5.4.2 committing entries from previous terms', () => {
  it('§5.4.2 a leader does not commit a previous-term entry by counting replicas, only with one of its own term', () => {
    const a = makeNode({ id: 'a', voters: FIVE, log: logOfTerms([1, 2]), hardState: { term: 2 } })
    becomeLeaderByHand(a, FIVE) // term 3, no-op at index 3
    for (const v of ['b', 'c', 'd', 'e']) ack(a, v, 2)
    drain(a)
    expect(a.node.status().commit).toBe(0)
    ack(a, 'b', 3)
    drain(a)
    expect(a.node.status().commit).toBe(0)
    ack(a, 'c', 3)
    drain(a)
    expect(a.node.status().commit).toBe(3)
  })

  it('§5.4.2 the Figure 8 scenario: an old-term entry on a majority is not committed and may be overwritten safely', () => {
    const ids = ['s1', 's2', 's3', 's4', 's5']
    // One entry per AppendEntries, so an entry can reach a follower without the ones after it.
    const net = new TestNetwork(ids, { ...PAPER, maxMessageBytes: 1 }, useSeed(8))
    net.elect('s1')
    // (a) s1 leads and replicates 'x' at index 2 to s2 only.
    net.filter = (m) => !(m.from === 's1' && m.type === MessageType.App && ['s3', 's4', 's5'].includes(m.to))
    net.propose('s1', 'x')
    expect(termsOf(net.node('s2'))).toEqual([1, 1])
    // (b) s1 crashes; s5 wins with votes from s3 and s4 and appends its no-op at index 2 only locally.
    net.heal()
    net.isolate('s1')
    net.filter = (m) => !(m.from === 's5' && m.type === MessageType.App)
    net.elect('s5')
    expect(net.leaders()).toContain('s5')
    expect(termsOf(net.node('s5'))).toEqual([1, 2])
    // (c) s5 crashes; s1 comes back, wins a later term and gets 'x' (term 1) onto a majority, but
    // none of its own term's entries (index 3 is stripped from every append).
    net.heal()
    net.isolate('s5')
    net.filter = (m) => {
      if (m.from === 's1' && m.type === MessageType.App) m.entries = m.entries.filter((e) => e.index < 3)
      return true
    }
    net.node('s1').restart(81)
    net.elect('s1')
    if (net.raw('s1').status().role !== Role.Leader) net.elect('s1') // lost to s5's voters: retry
    expect(net.raw('s1').status().role).toBe(Role.Leader)
    for (const id of ['s1', 's2', 's3', 's4']) expect(termsOf(net.node(id)).slice(0, 2)).toEqual([1, 1])
    expect(net.raw('s1').status().commit).toBe(1)
    // (d) s1 crashes again; s5 (last term 2) can win and overwrite index 2: had s1 committed 'x', a
    // committed entry would be lost. Instead nobody ever applied it, and all logs converge.
    net.heal()
    net.isolate('s1')
    net.node('s5').restart(85)
    net.elect('s5')
    if (net.raw('s5').status().role !== Role.Leader) net.elect('s5')
    expect(net.raw('s5').status().role).toBe(Role.Leader)
    net.heal()
    net.tickAll(2)
    for (const id of ids) {
      expect(net.node(id).payloads()).not.toContain('x')
      expect(termsOf(net.node(id))).toEqual(termsOf(net.node('s5')))
    }
    expect(termsOf(net.node('s5')).slice(0, 2)).toEqual([1, 2])
  })
})

describe('§5.5 follower and candidate crashes', () => {
  it('§5.5 a follower that receives an AppendEntries again acknowledges it and leaves its log unchanged', () => {
    const b = makeNode({ id: 'b', voters: ABC })
    // Commit 0: a retry below the follower's commit index is answered with that index instead.
    const app = { index: 0, logTerm: 0, entries: [entry(1, 2, 'x'), entry(2, 2, 'y')], commit: 0 }
    const first = appendTo(b, app)
    const rdBefore = b.node.status()
    b.node.step(msg({ type: MessageType.App, from: 'leader', to: 'b', term: 2, ...app }))
    expect(b.node.hasReady()).toBe(true)
    const rd = takeReady(b)
    expect(rd.entries).toEqual([])
    expect(rd.committedEntries).toEqual([])
    expect(ofType(rd.messages, MessageType.AppResp)).toEqual(first)
    expect(b.node.status()).toEqual(rdBefore)
    expect(termsOf(b)).toEqual([2, 2])
  })

  it('§5.5 a leader that receives a duplicate acknowledgment does not count it twice', () => {
    const a = leaderWithAckedNoop(FIVE)
    a.node.propose(bytes('x'))
    drain(a)
    for (let i = 0; i < 3; i++) ack(a, 'b', 2)
    drain(a)
    expect(a.node.status().commit).toBe(1)
  })

  it('§5.5 after an AppendEntries is lost the leader retries and the follower catches up', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(22))
    net.elect('a')
    let dropped = 0
    net.filter = (m) => {
      if (m.to === 'c' && m.type === MessageType.App && m.entries.length > 0 && dropped < 3) {
        dropped++
        return false
      }
      return true
    }
    net.propose('a', 'x')
    net.propose('a', 'y')
    expect(dropped).toBeGreaterThan(0)
    expect(net.node('c').payloads()).toEqual([])
    net.tickAll(3)
    expect(net.node('c').payloads()).toEqual(['x', 'y'])
    expect(net.node('a').payloads()).toEqual(['x', 'y'])
  })
})

describe('§5.5 retries after lost messages', () => {
  // Found by this test and fixed in 71cf7f0: a follower in Replicate state whose append was lost
  // was never sent it again while the leader was idle, so the entry never committed.
  it('§5.5 after the appends to a majority are lost the leader retries on heartbeats until the entry commits', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(23))
    net.elect('a')
    net.propose('a', 'w')
    let dropped = 0
    net.filter = (m) => {
      if (m.type === MessageType.App && m.entries.length > 0 && dropped < 2) {
        dropped++
        return false
      }
      return true
    }
    net.propose('a', 'x')
    expect(dropped).toBe(2)
    expect(net.raw('a').status().commit).toBe(2)
    net.tickAll(5 * PAPER.electionTicks!)
    for (const id of ABC) expect(net.node(id).payloads()).toEqual(['w', 'x'])
  })
})

describe('§5.4.3 safety under faults (property)', () => {
  type Op =
    | { kind: 'tick' }
    | { kind: 'propose' }
    | { kind: 'isolate'; node: number }
    | { kind: 'heal' }
    | { kind: 'drop'; percent: number }
    | { kind: 'restart'; node: number }
    | { kind: 'toggle'; node: number }
  const arbOp: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.constant<Op>({ kind: 'tick' }) },
    { weight: 4, arbitrary: fc.constant<Op>({ kind: 'propose' }) },
    { weight: 1, arbitrary: fc.nat(4).map<Op>((node) => ({ kind: 'isolate', node })) },
    { weight: 1, arbitrary: fc.constant<Op>({ kind: 'heal' }) },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 0, max: 60 }).map<Op>((percent) => ({ kind: 'drop', percent })),
    },
    { weight: 1, arbitrary: fc.nat(4).map<Op>((node) => ({ kind: 'restart', node })) },
    { weight: 1, arbitrary: fc.nat(4).map<Op>((node) => ({ kind: 'toggle', node })) },
  )

  /** Demotes a voter to learner or promotes a learner, one at a time, keeping at least 3 voters. */
  function toggle(net: TestNetwork, id: string): void {
    const leader = net.leaders()[0]
    if (!leader) return
    const { voters } = net.raw(leader).status().conf
    const isVoter = voters.includes(id)
    if (isVoter && voters.length <= 3) return
    const type = isVoter ? ConfChangeType.AddLearner : ConfChangeType.AddNode
    try {
      net.raw(leader).proposeConfChange({ type, node: id })
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e
    }
    net.settle()
  }

  /** Election Safety and State Machine Safety (Figure 3), checked after every step. */
  function checkSafety(net: TestNetwork, leaderOfTerm: Map<number, string>): void {
    for (const n of net.nodes.values()) {
      const s = n.node.status()
      if (s.role !== Role.Leader) continue
      const known = leaderOfTerm.get(s.term)
      expect(known === undefined || known === n.id, `two leaders in term ${s.term}`).toBe(true)
      leaderOfTerm.set(s.term, n.id)
    }
    const byIndex = new Map<number, string>()
    for (const n of net.nodes.values()) {
      for (const e of n.applied) {
        const key = `${e.term}:${text(e.data)}`
        const seen = byIndex.get(e.index)
        expect(seen === undefined || seen === key, `index ${e.index} applied as ${seen} and ${key}`).toBe(
          true,
        )
        byIndex.set(e.index, key)
      }
    }
  }

  it('§5.4.3 at most one leader per term and one entry applied per index, under partitions, drops, restarts and membership changes; then progress after healing', () => {
    const ids = ['a', 'b', 'c', 'd', 'e']
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(arbOp, { minLength: 100, maxLength: 200 }),
        (seed, ops) => {
          const net = new TestNetwork(ids, { electionTicks: 10 }, seed)
          const random = seededRandom(seed)
          const leaderOfTerm = new Map<number, string>()
          let proposals = 0
          for (const op of ops) {
            if (op.kind === 'tick') net.tickAll(1)
            else if (op.kind === 'isolate') net.isolate(ids[op.node]!)
            else if (op.kind === 'heal') net.heal()
            else if (op.kind === 'drop') net.filter = () => random(100) >= op.percent
            else if (op.kind === 'restart') net.node(ids[op.node]!).restart(seed + op.node)
            else if (op.kind === 'toggle') toggle(net, ids[op.node]!)
            else {
              const leader = net.leaders()[0]
              if (leader) {
                net.raw(leader).propose(bytes(`v${proposals++}`))
                net.settle()
              }
            }
            checkSafety(net, leaderOfTerm)
          }
          net.heal()
          net.tickAll(6 * 10)
          checkSafety(net, leaderOfTerm)
          const leaders = net.leaders()
          expect(leaders).toHaveLength(1)
          net.propose(leaders[0]!, 'final')
          net.tickAll(2)
          for (const id of ids) expect(net.node(id).payloads().at(-1)).toBe('final')
        },
      ),
      { seed: SEED, numRuns: 20 },
    )
  })
})
