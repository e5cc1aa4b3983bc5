/**
 * Features beyond the Raft paper, from Ongaro's thesis and etcd: PreVote, CheckQuorum, lease
 * reads, flow control, bounded messages, uncommitted-bytes back-pressure, learners, one-at-a-time
 * membership changes, leadership transfer, quiescence and snapshot status reporting.
 */
import { describe, expect, it } from 'vitest'
import {
  ConfChangeType,
  entrySizeBytes,
  MemoryStorage,
  MessageType,
  NONE,
  ProgressState,
  ProposalDroppedError,
  type RaftConfig,
  RawNode,
  Role,
} from '../../consensus/index.js'
import { bytes, seededRandom, TestNetwork } from './harness.js'
import {
  ack,
  becomeLeaderByHand,
  drain,
  leaderWithAckedNoop,
  makeNode,
  msg,
  ofType,
  PAPER,
  useSeed,
} from './paper-helpers.js'

const ABC = ['a', 'b', 'c']
/** The thesis' defaults: PreVote and CheckQuorum on. */
const THESIS: Partial<RaftConfig> = { electionTicks: 10 }
const ET = 10

/** Runs `fn` and returns the ProposalDroppedError it throws. */
function dropped(fn: () => void): ProposalDroppedError {
  try {
    fn()
  } catch (e) {
    if (e instanceof ProposalDroppedError) return e
    throw e
  }
  throw new Error('expected a ProposalDroppedError')
}

describe('PreVote (thesis §9.6)', () => {
  it('PreVote: a partitioned node does not raise its term while it cannot win', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(51))
    net.elect('a')
    const term = net.raw('a').status().term
    net.isolate('c')
    net.tickAll(5 * ET)
    expect(net.raw('c').status().term).toBe(term)
    expect(net.raw('c').status().role).toBe(Role.PreCandidate)
    net.heal()
    net.tickAll(2)
    expect(net.leaders()).toEqual(['a'])
    expect(net.raw('a').status().term).toBe(term)
  })

  it('PreVote: a pre-candidate that wins the pre-vote raises its term once and becomes leader', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(52))
    net.elect('a')
    expect(net.raw('a').status()).toMatchObject({ role: Role.Leader, term: 1 })
    expect(net.countDelivered(MessageType.PreVote)).toBe(2)
    expect(net.countDelivered(MessageType.Vote)).toBe(2)
  })
})

describe('CheckQuorum (thesis §6.2)', () => {
  it('CheckQuorum: a leader that hears from no quorum for an election timeout steps down', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(53))
    net.elect('a')
    net.isolate('a')
    net.tickAll(2 * ET)
    expect(net.raw('a').status()).toMatchObject({ role: Role.Follower, lead: NONE })
  })

  it('CheckQuorum: a leader in touch with a quorum keeps leading', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(54))
    net.elect('a')
    net.isolate('c')
    net.tickAll(5 * ET)
    expect(net.raw('a').status().role).toBe(Role.Leader)
  })

  it('CheckQuorum: a follower that heard from its leader within the timeout ignores a higher-term vote request', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(55))
    net.elect('a')
    const b = net.node('b')
    const term = b.node.status().term
    b.node.step(msg({ type: MessageType.Vote, from: 'c', to: 'b', term: term + 1, index: 99, logTerm: 99 }))
    expect(drain(b)).toEqual([])
    expect(b.node.status()).toMatchObject({ term, lead: 'a', vote: 'a' })
  })
})

describe('lease reads (thesis §6.4.1)', () => {
  it('lease reads: the leader answers a ReadIndex from its lease without a heartbeat round', () => {
    const net = new TestNetwork(ABC, { ...THESIS, readOnly: 'lease' }, useSeed(56))
    net.elect('a')
    net.tickAll(2)
    const a = net.node('a')
    a.node.readIndex(bytes('lease'))
    const out = drain(a)
    expect(out.filter((m) => m.context !== undefined)).toEqual([])
    expect(a.readStates).toEqual([{ index: a.node.status().commit, context: bytes('lease') }])
  })

  it('lease reads: a leader cut off for most of an election timeout no longer trusts its lease', () => {
    const net = new TestNetwork(ABC, { ...THESIS, readOnly: 'lease' }, useSeed(57))
    net.elect('a')
    net.tickAll(2)
    net.isolate('a')
    net.tickAll(ET - 1)
    expect(net.raw('a').status().role).toBe(Role.Leader)
    net.raw('a').readIndex(bytes('late'))
    net.settle()
    expect(net.node('a').readStates).toEqual([])
  })

  // Found by this test and fixed in baa5522: the transfer's vote request overrides followers'
  // lease promises, so a transferring leader must not answer from its lease.
  it('lease reads: a leader transferring leadership does not answer from its lease (the transfer breaks it)', () => {
    const net = new TestNetwork(ABC, { ...THESIS, readOnly: 'lease' }, useSeed(70))
    net.elect('a')
    net.propose('a', 'x')
    net.tickAll(2)
    // From now on 'a' hears nothing, so it does not learn that 'b' took over.
    net.filter = (m) => m.to !== 'a'
    net.raw('a').transferLeadership('b')
    net.settle()
    expect(net.raw('b').status().role).toBe(Role.Leader)
    net.propose('b', 'new')
    const newCommit = net.raw('b').status().commit
    net.raw('a').readIndex(bytes('r'))
    net.settle()
    // A read point below the newer commit would miss 'new', which committed before the read began.
    for (const rs of net.node('a').readStates) expect(rs.index).toBeGreaterThanOrEqual(newCommit)
  })

  // Found by this test and fixed in baa5522: the lease (thesis §6.4.1) rests on followers refusing
  // votes for an election timeout after hearing from the leader, but a restarted follower forgot
  // that it had, granted votes at once, and let another leader commit while the old one still
  // served lease reads at its old commit index.
  it('lease reads: a restarted follower keeps its lease promise for an election timeout, so no other leader commits while the old one trusts its lease', () => {
    const net = new TestNetwork(ABC, { ...THESIS, readOnly: 'lease' }, useSeed(72))
    net.elect('a')
    net.propose('a', 'x')
    net.cutLink('a', 'b')
    // 'b' stops hearing from 'a' and, once its lease promise expires, campaigns; 'c' still
    // hears from 'a' and refuses.
    for (let t = 0; t < 3 * ET && net.raw('b').status().role === Role.Follower; t++) net.tickAll(1)
    expect(net.raw('a').status().role).toBe(Role.Leader)
    net.node('c').restart(721)
    net.raw('b').campaign()
    net.settle()
    // The restarted follower keeps its promise, so 'b' cannot win yet.
    expect(net.raw('b').status().role).not.toBe(Role.Leader)
    const otherCommit = Math.max(net.raw('b').status().commit, net.raw('c').status().commit)
    net.raw('a').readIndex(bytes('r'))
    net.settle()
    for (const rs of net.node('a').readStates) expect(rs.index).toBeGreaterThanOrEqual(otherCommit)
  })

  it('lease reads: are refused at construction without CheckQuorum', () => {
    const config = { id: 'a', storage: new MemoryStorage(), random: seededRandom(1) }
    expect(() => new RawNode({ ...config, readOnly: 'lease', checkQuorum: false })).toThrow(RangeError)
  })
})

describe('flow control and limits', () => {
  it('flow control: the leader keeps at most maxInflightAppends unacknowledged appends per follower', () => {
    const a = leaderWithAckedNoop(ABC, { maxInflightAppends: 2 })
    const apps: number[] = []
    for (let i = 0; i < 5; i++) {
      a.node.propose(bytes(`p${i}`))
      apps.push(
        ...ofType(drain(a), MessageType.App)
          .filter((m) => m.to === 'b')
          .map((m) => m.index),
      )
    }
    expect(apps).toEqual([1, 2])
    expect(a.node.status().progress!.b!.inflight).toBe(2)
    ack(a, 'b', 2) // frees the first window slot
    const next = ofType(drain(a), MessageType.App).filter((m) => m.to === 'b')
    expect(next.length).toBeGreaterThan(0)
    expect(next[0]!.index).toBe(3)
  })

  it('bounded message size: appends carry at most maxMessageBytes of entries, or one oversized entry', () => {
    const maxMessageBytes = 200
    const net = new TestNetwork(ABC, { ...PAPER, maxMessageBytes }, useSeed(58))
    net.elect('a')
    net.isolate('c')
    for (let i = 0; i < 10; i++) net.propose('a', `${i}`.padEnd(40, '.'))
    net.propose('a', 'big'.padEnd(500, '.'))
    net.heal()
    net.tickAll(3)
    const apps = net.delivered.filter(
      (m) => m.type === MessageType.App && m.to === 'c' && m.entries.length > 0,
    )
    expect(apps.length).toBeGreaterThan(2)
    for (const m of apps) {
      const size = m.entries.reduce((s, e) => s + entrySizeBytes(e), 0)
      expect(size <= maxMessageBytes || m.entries.length === 1).toBe(true)
    }
    expect(net.node('c').payloads()).toEqual(net.node('a').payloads())
  })

  it('back-pressure: a proposal beyond maxUncommittedBytes is dropped with a typed error, and accepted once entries commit', () => {
    const a = leaderWithAckedNoop(ABC, { maxUncommittedBytes: 100 })
    a.node.propose(new Uint8Array(60))
    drain(a)
    const err = dropped(() => a.node.propose(new Uint8Array(60)))
    expect(err).toMatchObject({
      code: 'ACTORMESH_PROPOSAL_DROPPED',
      reason: 'uncommitted-bytes',
      leader: 'a',
    })
    expect(a.node.status().lastIndex).toBe(2)
    ack(a, 'b', 2)
    drain(a)
    a.node.propose(new Uint8Array(60))
    expect(a.node.status().lastIndex).toBe(3)
  })

  it('back-pressure: a follower with no known leader drops a proposal with a typed error', () => {
    const b = makeNode({ id: 'b', voters: ABC })
    expect(dropped(() => b.node.propose(bytes('x')))).toMatchObject({ reason: 'no-leader', leader: NONE })
  })
})

describe('membership changes one server at a time (thesis §4.1, §4.2.1)', () => {
  it('learners: a learner catches up and is then promoted to a voter that counts toward quorum', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(59))
    net.elect('a')
    net.propose('a', 'x')
    net.addNode('d', PAPER)
    net.raw('a').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' })
    net.settle()
    net.tickAll(1)
    expect(net.node('d').payloads()).toEqual(['x'])
    expect(net.raw('a').status().progress!.d).toMatchObject({ isLearner: true })
    net.raw('a').proposeConfChange({ type: ConfChangeType.AddNode, node: 'd' })
    net.settle()
    expect(net.raw('a').status().conf).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] })
    // Four voters: a quorum is three, so 'a' and 'b' alone no longer commit.
    net.isolate('c')
    net.isolate('d')
    net.propose('a', 'y')
    expect(net.node('a').payloads()).toEqual(['x'])
  })

  it('one at a time: a second membership change is refused until the first is applied', () => {
    const a = leaderWithAckedNoop(ABC, {})
    a.node.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' })
    drain(a)
    const err = dropped(() => a.node.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'e' }))
    expect(err).toMatchObject({ code: 'ACTORMESH_PROPOSAL_DROPPED', reason: 'pending-conf-change' })
    ack(a, 'b', 2)
    drain(a) // commits and applies the first change
    a.node.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'e' })
    expect(a.node.status().lastIndex).toBe(3)
  })

  it('one at a time: a new leader refuses membership changes until its no-op is applied', () => {
    const a = makeNode({ id: 'a', voters: ABC })
    becomeLeaderByHand(a, ABC)
    const err = dropped(() => a.node.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }))
    expect(err.reason).toBe('pending-conf-change')
  })

  it('membership: a removed server that never learns of its removal does not disrupt the cluster (thesis §4.2.3)', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(71))
    net.elect('a')
    net.isolate('c')
    net.raw('a').proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'c' })
    net.settle()
    expect(net.raw('a').status().conf.voters).toEqual(['a', 'b'])
    const term = net.raw('a').status().term
    net.tickAll(3 * ET) // 'c' times out and campaigns, cut off
    net.heal()
    net.tickAll(3 * ET) // and keeps campaigning, now heard
    expect(net.leaders()).toContain('a')
    expect(net.raw('a').status().term).toBe(term)
    net.propose('a', 'x')
    expect(net.node('b').payloads()).toEqual(['x'])
  })

  // Regression (found by these tests): a change that removed or demoted the last voter was
  // accepted, after which the group could never elect a leader again. `proposeConfChange` now
  // throws a RangeError and appends nothing, as etcd refuses "removed all voters".
  it('membership: a change that would leave the group without a voter is refused and nothing is appended', () => {
    for (const type of [ConfChangeType.RemoveNode, ConfChangeType.AddLearner]) {
      const net = new TestNetwork(['a', 'd'], PAPER, useSeed(74), { voters: ['a'], learners: ['d'] })
      net.elect('a')
      const before = net.raw('a').status()
      expect(() => net.raw('a').proposeConfChange({ type, node: 'a' })).toThrow()
      net.settle()
      expect(net.raw('a').status()).toMatchObject({ lastIndex: before.lastIndex, conf: before.conf })
      expect(net.leaders()).toEqual(['a'])
    }
  })

  it('membership: a follower cannot propose a membership change', () => {
    const net = new TestNetwork(ABC, PAPER, useSeed(60))
    net.elect('a')
    const err = dropped(() => net.raw('b').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }))
    expect(err).toMatchObject({ reason: 'no-leader', leader: 'a' })
  })
})

describe('leadership transfer (thesis §3.10)', () => {
  it('transfer: the transferee becomes leader in a new term and the log is kept', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(61))
    net.elect('a')
    net.propose('a', 'x')
    const term = net.raw('a').status().term
    net.raw('a').transferLeadership('b')
    net.settle()
    expect(net.leaders()).toEqual(['b'])
    expect(net.raw('b').status().term).toBe(term + 1)
    net.propose('b', 'y')
    for (const id of ABC) expect(net.node(id).payloads()).toEqual(['x', 'y'])
  })

  it('transfer: a lagging transferee is caught up first, then takes over', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(62))
    net.elect('a')
    net.isolate('c')
    net.propose('a', 'x')
    net.heal()
    net.raw('a').transferLeadership('c')
    net.settle()
    expect(net.leaders()).toEqual(['c'])
    expect(net.node('c').payloads()).toEqual(['x'])
  })

  it('transfer: proposals are dropped while a transfer is in progress, and accepted after it times out', () => {
    const net = new TestNetwork(ABC, THESIS, useSeed(63))
    net.elect('a')
    net.isolate('c')
    net.raw('a').transferLeadership('c')
    net.settle()
    expect(net.raw('a').status().leadTransferee).toBe('c')
    const err = dropped(() => net.raw('a').propose(bytes('x')))
    expect(err).toMatchObject({ reason: 'transferring', leader: 'c' })
    net.tickAll(ET)
    expect(net.raw('a').status()).toMatchObject({ role: Role.Leader, leadTransferee: NONE })
    net.propose('a', 'x')
    expect(net.node('a').payloads()).toEqual(['x'])
  })
})

describe('quiescence', () => {
  it('quiescence: an idle group stops all traffic and wakes on the next proposal', () => {
    const net = new TestNetwork(ABC, { ...THESIS, quiesceAfterTicks: 3 }, useSeed(64))
    net.elect('a')
    net.propose('a', 'x')
    net.tickAll(10)
    for (const id of ABC) expect(net.raw(id).status().quiesced).toBe(true)
    const before = net.delivered.length
    net.tickAll(10 * ET)
    expect(net.delivered.length).toBe(before)
    expect(net.leaders()).toEqual(['a'])
    net.propose('a', 'y')
    for (const id of ABC) expect(net.node(id).payloads()).toEqual(['x', 'y'])
    expect(net.raw('a').status().quiesced).toBe(false)
  })

  it('quiescence: a quiesced follower wakes and elects a new leader when the leader is gone and it is woken', () => {
    const net = new TestNetwork(ABC, { ...THESIS, quiesceAfterTicks: 3 }, useSeed(65))
    net.elect('a')
    net.tickAll(10)
    net.isolate('a')
    net.raw('b').wake()
    net.raw('c').wake()
    net.tickAll(4 * ET)
    expect(net.leaders().filter((id) => id !== 'a')).toHaveLength(1)
  })
})

describe('snapshots (§7)', () => {
  /** A leader 'a' that compacted its log while 'c' was away. */
  function compactedCluster(seed: number): TestNetwork {
    const net = new TestNetwork(ABC, PAPER, useSeed(seed))
    net.elect('a')
    net.isolate('c')
    for (let i = 0; i < 5; i++) net.propose('a', `p${i}`)
    const a = net.node('a')
    const index = a.appliedIndex
    a.storage.createSnapshot(index, a.node.status().conf, bytes('state'))
    a.storage.compact(index)
    net.heal()
    return net
  }

  it('snapshots: a follower behind the first index is sent a snapshot and then resumes replication', () => {
    const net = compactedCluster(66)
    net.tickAll(2)
    expect(net.countDelivered(MessageType.Snap)).toBe(1)
    const c = net.node('c')
    expect(c.snapshotsApplied.map((s) => s.meta.index)).toEqual([net.node('a').appliedIndex])
    net.propose('a', 'after')
    expect(c.payloads()).toEqual(['after'])
    expect(c.node.status()).toMatchObject({
      lastIndex: net.raw('a').status().lastIndex,
      commit: net.raw('a').status().commit,
    })
    expect(net.raw('a').status().progress!.c!.state).toBe(ProgressState.Replicate)
  })

  it('snapshots: the leader waits in Snapshot state until the status is reported, and retries after a failure', () => {
    const net = compactedCluster(67)
    net.filter = (m) => m.type !== MessageType.Snap
    net.tickAll(1)
    const progress = () => net.raw('a').status().progress!.c!
    expect(progress().state).toBe(ProgressState.Snapshot)
    net.tickAll(3)
    expect(net.delivered.filter((m) => m.type === MessageType.Snap)).toEqual([])
    net.raw('a').reportSnapshot('c', false)
    expect(progress().state).toBe(ProgressState.Probe)
    net.heal()
    net.tickAll(2)
    expect(net.countDelivered(MessageType.Snap)).toBe(1)
    net.raw('a').reportSnapshot('c', true)
    net.tickAll(2)
    expect(progress()).toMatchObject({
      state: ProgressState.Replicate,
      match: net.raw('a').status().lastIndex,
    })
  })

  it('snapshots: a snapshot nobody acknowledges is sent again after snapshotTimeoutTicks', () => {
    const net = compactedCluster(68)
    net.filter = (m) => m.type !== MessageType.Snap // lost in transit, and no status is reported
    net.tickAll(1)
    const progress = () => net.raw('a').status().progress!.c!
    expect(progress().state).toBe(ProgressState.Snapshot)
    net.heal()
    net.tickAll(60) // the default timeout is 10 election timeouts (100 ticks at electionTicks 10)
    expect(progress().state).toBe(ProgressState.Snapshot)
    net.tickAll(60)
    expect(net.countDelivered(MessageType.Snap)).toBe(1)
    expect(progress()).toMatchObject({
      state: ProgressState.Replicate,
      match: net.raw('a').status().lastIndex,
    })
  })
})
