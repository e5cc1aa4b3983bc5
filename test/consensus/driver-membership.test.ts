import { afterEach, describe, expect, it, onTestFailed } from 'vitest'
import { ConfChangeType, ProposalDroppedError } from '../../consensus/index.js'
import { TestCluster } from './driver-harness.js'

const SEED = Number(process.env.SEED ?? 20_261_124)
const bytes = (s: string) => new TextEncoder().encode(s)

let cluster: TestCluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

describe('MultiRaft membership changes', () => {
  it('adds a learner, catches it up, promotes it and removes a voter, with proposals before and after', async () => {
    onTestFailed(() => console.error(`driver membership test failed with SEED=${SEED}`))
    const c = (cluster = new TestCluster(['a', 'b', 'c', 'd'], SEED))
    const abc = ['a', 'b', 'c'].map((id) => c.member(id))
    for (const m of abc)
      m.driver.createGroup('g', { bootstrap: { voters: ['a', 'b', 'c'], learners: [] }, stateMachine: m.sm })
    c.member('a').driver.campaign('g')
    await c.tickUntil(() => c.agreedLeader('g', abc) === 'a', 100, 'a leads')
    const a = c.member('a').driver
    await a.propose('g', bytes('before'))
    await c.settle()
    expect(abc.map((m) => m.driver.leader('g'))).toEqual(['a', 'a', 'a'])

    // A follower cannot change membership, and the change is typed.
    await expect(
      c.member('b').driver.proposeConfChange('g', { type: ConfChangeType.AddLearner, node: 'd' }),
    ).rejects.toBeInstanceOf(ProposalDroppedError)

    const asLearner = a.proposeConfChange('g', { type: ConfChangeType.AddLearner, node: 'd' })
    // Only one change at a time.
    await expect(a.proposeConfChange('g', { type: ConfChangeType.AddNode, node: 'd' })).rejects.toMatchObject(
      {
        reason: 'pending-conf-change',
      },
    )
    await c.settle()
    await expect(asLearner).resolves.toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] })

    // The joiner is created with the group's current membership (docs/architecture.md).
    const d = c.member('d')
    d.driver.createGroup('g', { bootstrap: { voters: ['a', 'b', 'c'], learners: ['d'] }, stateMachine: d.sm })
    await c.tickUntil(() => d.sm.payloads('g').join() === 'before', 50, 'the learner catches up')

    await c.settle()
    const promoted = a.proposeConfChange('g', { type: ConfChangeType.AddNode, node: 'd' })
    await c.settle()
    await expect(promoted).resolves.toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] })

    const removed = a.proposeConfChange('g', { type: ConfChangeType.RemoveNode, node: 'c' })
    await c.settle()
    await expect(removed).resolves.toEqual({ voters: ['a', 'b', 'd'], learners: [] })

    await a.propose('g', bytes('after'))
    await c.tickUntil(() => d.sm.payloads('g').join() === 'before,after', 50, 'd applies the later proposal')
    expect(c.member('b').driver.status('g').conf).toEqual({ voters: ['a', 'b', 'd'], learners: [] })
  })

  it('refuses a change that would leave no voter, appending nothing', async () => {
    const c = (cluster = new TestCluster(['a'], SEED))
    const a = c.member('a')
    a.driver.createGroup('g', { bootstrap: { voters: ['a'], learners: [] }, stateMachine: a.sm })
    a.driver.campaign('g')
    await c.tickUntil(() => a.driver.status('g').role === 3, 20, 'a leads')
    await c.settle()
    const last = a.driver.status('g').lastIndex
    await expect(
      a.driver.proposeConfChange('g', { type: ConfChangeType.RemoveNode, node: 'a' }),
    ).rejects.toBeInstanceOf(RangeError)
    expect(a.driver.status('g').lastIndex).toBe(last)
  })
})
