import { describe, expect, it } from 'vitest'
import { Role } from '../../consensus/index.js'
import { TestNetwork } from './harness.js'

describe('raft smoke', () => {
  it('elects a leader and replicates proposals to every node', () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    net.elect('a')
    expect(net.raw('a').status().role).toBe(Role.Leader)
    net.propose('a', 'x')
    net.propose('a', 'y')
    for (const id of ['a', 'b', 'c']) expect(net.node(id).payloads()).toEqual(['x', 'y'])
  })

  it('elects a leader by ticking alone', () => {
    const net = new TestNetwork(['a', 'b', 'c'], {}, 7)
    net.tickAll(40)
    expect(net.leaders()).toHaveLength(1)
  })
})
