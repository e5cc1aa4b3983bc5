import { describe, expect, it } from 'vitest'
import { MessageType } from '../../consensus/index.js'
import { TestNetwork } from './harness.js'

describe('raft regressions', () => {
  it('resends an append lost while the follower was in Replicate state, on the next heartbeat answer', () => {
    // Found by the paper-rule tests: the leader's `next` for the follower was already past the lost
    // entry, so an idle leader never sent it again and the entry never committed.
    const net = new TestNetwork(['a', 'b', 'c'], { electionTicks: 10 }, 23)
    net.elect('a')
    net.propose('a', 'w')
    let dropped = 0
    net.filter = (m) => !(m.type === MessageType.App && m.entries.length > 0 && dropped++ < 2)
    net.propose('a', 'x')
    expect(net.raw('a').status().commit).toBe(2)
    net.tickAll(3)
    for (const id of ['a', 'b', 'c']) expect(net.node(id).payloads()).toEqual(['w', 'x'])
  })
})

describe('raft regressions found by the paper-rule tests', () => {
  it('marks a Ready that carries a received snapshot as mustSync (its acknowledgment depends on it)', async () => {
    const { MemoryStorage, RawNode } = await import('../../consensus/index.js')
    const { seededRandom } = await import('./harness.js')
    const storage = MemoryStorage.bootstrap({ voters: ['a', 'b', 'c'], learners: [] })
    storage.setHardState({ term: 1, vote: '', commit: 0 })
    const b = new RawNode({ id: 'b', storage, random: seededRandom(1) })
    if (b.hasReady()) b.advance(b.ready())
    const snapshot = {
      meta: { index: 10, term: 1, conf: { voters: ['a', 'b', 'c'], learners: [] } },
      data: new Uint8Array([1]),
    }
    b.step({
      type: MessageType.Snap,
      from: 'a',
      to: 'b',
      term: 1,
      logTerm: 0,
      index: 0,
      commit: 0,
      reject: false,
      rejectHint: 0,
      entries: [],
      snapshot,
    })
    const rd = b.ready()
    expect(rd.snapshot?.meta.index).toBe(10)
    expect(rd.mustSync).toBe(true)
  })

  it('does not answer lease reads while a leadership transfer is under way', () => {
    const net = new TestNetwork(['a', 'b', 'c'], { readOnly: 'lease', electionTicks: 10 }, 70)
    net.elect('a')
    net.propose('a', 'x')
    net.tickAll(2)
    net.filter = (m) => m.to !== 'a' // 'a' never learns that 'b' took over
    net.raw('a').transferLeadership('b')
    net.settle()
    net.propose('b', 'new')
    const newCommit = net.raw('b').status().commit
    net.raw('a').readIndex(new TextEncoder().encode('r'))
    net.settle()
    for (const rs of net.node('a').readStates) expect(rs.index).toBeGreaterThanOrEqual(newCommit)
  })

  it('keeps a restarted follower from voting for an election timeout in lease mode', () => {
    const net = new TestNetwork(['a', 'b', 'c'], { readOnly: 'lease', electionTicks: 10 }, 72)
    net.elect('a')
    net.propose('a', 'x')
    net.node('c').restart(721)
    net.raw('b').campaign()
    net.settle()
    expect(net.raw('b').status().role).not.toBe(3)
    expect(net.raw('a').status().role).toBe(3)
  })
})
