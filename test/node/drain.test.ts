import { describe, expect, it } from 'vitest'
import { ProgressState, type ProgressStatus, Role, type Status } from '../../consensus/index.js'
import { transferTarget } from '../../node/mesh-node.js'

function progress(match: number, isLearner = false): ProgressStatus {
  return {
    match,
    next: match + 1,
    state: ProgressState.Replicate,
    recentActive: true,
    isLearner,
    inflight: 0,
  }
}

function leaderStatus(voters: string[], learners: string[], matches: Record<string, number>): Status {
  const prs: Record<string, ProgressStatus> = {}
  for (const p of voters) prs[p] = progress(matches[p] ?? 0)
  for (const p of learners) prs[p] = progress(matches[p] ?? 0, true)
  return {
    id: 'a',
    term: 3,
    vote: 'a',
    commit: 10,
    applied: 10,
    lead: 'a',
    role: Role.Leader,
    lastIndex: 10,
    quiesced: false,
    leadTransferee: '',
    conf: { voters, learners },
    progress: prs,
  }
}

const everyoneAlive = () => true

describe('transferTarget', () => {
  it('picks the live voter whose log matches the most', () => {
    const st = leaderStatus(['a', 'b', 'c'], [], { a: 10, b: 7, c: 9 })
    expect(transferTarget(st, everyoneAlive)).toBe('c')
  })

  it('breaks a tie between equally caught-up voters by the smaller peer id', () => {
    const st = leaderStatus(['a', 'c', 'b'], [], { a: 10, b: 10, c: 10 })
    expect(transferTarget(st, everyoneAlive)).toBe('b')
  })

  it('skips a voter that is not alive, however caught up', () => {
    const st = leaderStatus(['a', 'b', 'c'], [], { a: 10, b: 4, c: 10 })
    expect(transferTarget(st, (p) => p !== 'c')).toBe('b')
  })

  it('never picks a learner, even the most caught-up member', () => {
    const st = leaderStatus(['a', 'b'], ['d'], { a: 10, b: 2, d: 10 })
    expect(transferTarget(st, everyoneAlive)).toBe('b')
  })

  it('finds no target when every other voter is dead or the group has one voter', () => {
    expect(transferTarget(leaderStatus(['a', 'b', 'c'], [], { b: 10, c: 10 }), (p) => p === 'a')).toBe(
      undefined,
    )
    expect(transferTarget(leaderStatus(['a'], ['d'], { d: 10 }), everyoneAlive)).toBe(undefined)
  })

  it('finds no target on a node that does not lead the group (no progress to judge by)', () => {
    const { progress: _, ...follower } = leaderStatus(['a', 'b', 'c'], [], {})
    expect(transferTarget({ ...follower, role: Role.Follower, lead: 'b' }, everyoneAlive)).toBe(undefined)
  })
})
