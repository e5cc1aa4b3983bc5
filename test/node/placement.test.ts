import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  balanceLeaders,
  type NodeView,
  pickReplicas,
  type ReplicaSet,
  repairStep,
} from '../../node/placement.js'

const view = (peer: string, replicas = 0, alive = true, deadForMs = 0): NodeView => ({
  peer,
  alive,
  deadForMs,
  replicas,
})

describe('pickReplicas', () => {
  it('picks distinct live nodes, least loaded first, the same on every node', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ replicas: fc.nat(20), alive: fc.boolean() }), { minLength: 0, maxLength: 12 }),
        fc.integer({ min: 1, max: 7 }),
        (specs, count) => {
          const nodes = specs.map((s, i) => view(`n${i}`, s.replicas, s.alive))
          const picked = pickReplicas(nodes, count)
          const alive = nodes.filter((n) => n.alive)
          expect(new Set(picked).size).toBe(picked.length)
          expect(picked.length).toBe(Math.min(count, alive.length))
          for (const p of picked) expect(nodes.find((n) => n.peer === p)!.alive).toBe(true)
          const maxPicked = Math.max(-1, ...picked.map((p) => nodes.find((n) => n.peer === p)!.replicas))
          const skipped = alive.filter((n) => !picked.includes(n.peer))
          for (const n of skipped) expect(n.replicas).toBeGreaterThanOrEqual(maxPicked)
          expect(pickReplicas([...nodes].reverse(), count)).toEqual(picked)
        },
      ),
      { seed: 42 },
    )
  })

  it('refuses a replica count below one', () => {
    expect(() => pickReplicas([view('a')], 0)).toThrow(RangeError)
  })
})

describe('repairStep', () => {
  /** Applies repair steps until none is left, as the system leader would, one change at a time. */
  function repairFully(set: ReplicaSet, rf: number, nodes: Map<string, NodeView>): ReplicaSet {
    for (let i = 0; i < 20; i++) {
      const step = repairStep(set, rf, nodes, 1_000, () => true)
      if (!step) return set
      if (step.kind === 'add-learner') set = { ...set, learners: [...set.learners, step.peer] }
      if (step.kind === 'promote')
        set = {
          ...set,
          learners: set.learners.filter((p) => p !== step.peer),
          voters: [...set.voters, step.peer],
        }
      if (step.kind === 'remove')
        set = {
          ...set,
          voters: set.voters.filter((p) => p !== step.peer),
          learners: set.learners.filter((p) => p !== step.peer),
        }
      // Invariant: live voters never drop below what they were before the repair.
      expect(set.voters.filter((p) => nodes.get(p)!.alive).length).toBeGreaterThanOrEqual(2)
    }
    throw new Error('repair did not converge')
  }

  it('replaces a voter dead past the timeout: add learner, promote, then remove', () => {
    const nodes = new Map(
      [view('a', 1), view('b', 1), view('c', 1, false, 5_000), view('d', 0), view('e', 3)].map((n) => [
        n.peer,
        n,
      ]),
    )
    const set: ReplicaSet = { namespace: 'ns', voters: ['a', 'b', 'c'], learners: [], leader: 'a' }
    const steps: string[] = []
    let s = set
    for (let i = 0; i < 5; i++) {
      const step = repairStep(s, 3, nodes, 1_000, () => true)
      if (!step) break
      steps.push(`${step.kind} ${step.peer}`)
      if (step.kind === 'add-learner') s = { ...s, learners: [step.peer] }
      if (step.kind === 'promote') s = { ...s, learners: [], voters: [...s.voters, step.peer] }
      if (step.kind === 'remove') s = { ...s, voters: s.voters.filter((p) => p !== step.peer) }
    }
    expect(steps).toEqual(['add-learner d', 'promote d', 'remove c'])
  })

  it('waits for a learner to catch up before promoting it', () => {
    const nodes = new Map(
      [view('a'), view('b'), view('c', 0, false, 5_000), view('d')].map((n) => [n.peer, n]),
    )
    const set: ReplicaSet = { namespace: 'ns', voters: ['a', 'b', 'c'], learners: ['d'], leader: 'a' }
    expect(repairStep(set, 3, nodes, 1_000, () => false)).toBeUndefined()
    expect(repairStep(set, 3, nodes, 1_000, () => true)).toEqual({
      kind: 'promote',
      namespace: 'ns',
      peer: 'd',
    })
  })

  it('leaves a voter that is dead for less than the timeout alone', () => {
    const nodes = new Map([view('a'), view('b'), view('c', 0, false, 500), view('d')].map((n) => [n.peer, n]))
    expect(
      repairStep(
        { namespace: 'ns', voters: ['a', 'b', 'c'], learners: [], leader: 'a' },
        3,
        nodes,
        1_000,
        () => true,
      ),
    ).toBeUndefined()
  })

  it('converges to the replication factor of live voters from any single failure', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 4, max: 7 }), (deadAt, count) => {
        const peers = Array.from({ length: count }, (_, i) => `n${i}`)
        const nodes = new Map(peers.map((p, i) => [p, view(p, i, i !== deadAt, i === deadAt ? 10_000 : 0)]))
        const done = repairFully(
          { namespace: 'ns', voters: ['n0', 'n1', 'n2'], learners: [], leader: deadAt === 0 ? 'n1' : 'n0' },
          3,
          nodes,
        )
        expect(done.voters).toHaveLength(3)
        expect(done.voters.every((p) => nodes.get(p)!.alive)).toBe(true)
        expect(done.learners).toEqual([])
      }),
      { seed: 7 },
    )
  })
})

describe('balanceLeaders', () => {
  it('spreads leaders of 50 groups on 5 nodes to within one of the fair share', () => {
    const peers = ['a', 'b', 'c', 'd', 'e']
    let sets: ReplicaSet[] = Array.from({ length: 50 }, (_, i) => ({
      namespace: `ns${i}`,
      voters: [peers[i % 5]!, peers[(i + 1) % 5]!, peers[(i + 2) % 5]!],
      learners: [],
      leader: '',
    }))
    // Skewed start: 'a' leads every group it is a voter of (30 of 50).
    sets = sets.map((s) => ({ ...s, leader: s.voters.includes('a') ? 'a' : s.voters[0]! }))
    const alive = new Set(peers)
    for (let round = 0; round < 20; round++) {
      const moves = balanceLeaders(sets, alive, 0, 10)
      if (moves.length === 0) break
      for (const m of moves)
        sets = sets.map((s) => (s.namespace === m.namespace ? { ...s, leader: m.to } : s))
    }
    const counts = peers.map((p) => sets.filter((s) => s.leader === p).length)
    expect(Math.max(...counts) - 10).toBeLessThanOrEqual(1)
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(9)
  })

  it('moves a leadership only to a live voter of the same group', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(3), fc.nat(3), fc.nat(3), fc.nat(3)), { maxLength: 30 }),
        fc.nat(3),
        (specs, deadIdx) => {
          const peers = ['a', 'b', 'c', 'd']
          const alive = new Set(peers.filter((_, i) => i !== deadIdx))
          const sets = specs.map(([x, y, z, l], i) => {
            const voters = [...new Set([peers[x]!, peers[y]!, peers[z]!])]
            return { namespace: `ns${i}`, voters, learners: [], leader: voters[l % voters.length]! }
          })
          for (const m of balanceLeaders(sets, alive, 0, 100)) {
            const s = sets.find((x) => x.namespace === m.namespace)!
            expect(s.voters).toContain(m.to)
            expect(alive.has(m.to)).toBe(true)
            expect(m.from).toBe(s.leader)
          }
        },
      ),
      { seed: 3 },
    )
  })
})
