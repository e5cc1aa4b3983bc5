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
