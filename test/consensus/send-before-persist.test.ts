import { describe, expect, it } from 'vitest'
import { type Message, MessageType, type Ready, Role } from '../../consensus/index.js'
import { bytes, TestNetwork } from './harness.js'

/** The types of `rd`'s messages that may go out before it is persisted. */
const early = (rd: Ready): MessageType[] => rd.messages.slice(0, rd.sendBeforePersist).map((m) => m.type)

describe('Ready.sendBeforePersist', () => {
  it("marks a settled leader's appends, and nothing of a candidate, a new leader or a follower", () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    const a = net.raw('a')
    const b = net.raw('b')

    // Until 'a' has won: no Ready of anyone has early messages — not a (pre-)candidate's vote
    // requests (its term and vote must be durable first), not a vote answer, and not the first
    // appends of the Ready in which 'a' becomes leader (its role just changed).
    a.campaign()
    let becameLeader = false
    for (let round = 0; round < 20; round++) {
      const out: Message[] = []
      for (const id of ['a', 'b', 'c']) {
        const n = net.raw(id)
        if (!n.hasReady()) continue
        const rd = n.ready()
        if (!becameLeader || id !== 'a') expect(rd.sendBeforePersist, `${id} round ${round}`).toBe(0)
        if (id === 'a' && rd.softState?.role === Role.Leader) becameLeader = true
        const storage = net.node(id).storage
        storage.append(rd.entries)
        if (rd.hardState) storage.setHardState(rd.hardState)
        out.push(...rd.messages)
        n.advance(rd)
      }
      if (out.length === 0) break
      for (const m of out) net.raw(m.to).step(m)
    }
    expect(becameLeader).toBe(true)
    expect(a.status().role).toBe(Role.Leader)

    // A settled leader's new entry: its appends may go out before its own write.
    a.propose(bytes('x'))
    const put = a.ready()
    expect(put.entries).toHaveLength(1)
    expect(put.sendBeforePersist).toBeGreaterThan(0)
    expect(early(put).every((t) => t === MessageType.App || t === MessageType.Heartbeat)).toBe(true)
    const toB = put.messages.find((m) => m.to === 'b' && m.type === MessageType.App)!

    // The follower's acknowledgment waits for its own write.
    b.step(toB)
    const ack = b.ready()
    expect(ack.messages.map((m) => m.type)).toContain(MessageType.AppResp)
    expect(ack.sendBeforePersist).toBe(0)
  })

  it('puts the early messages first, keeping the order of each kind', () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    net.elect('a')
    const a = net.raw('a')
    a.propose(bytes('1'))
    a.propose(bytes('2'))
    // A read request answered by a heartbeat round rides the same Ready as the appends.
    a.readIndex(bytes('r'))
    const rd = a.ready()
    const kinds = rd.messages.map((m) => m.type)
    expect(rd.sendBeforePersist).toBe(
      kinds.filter((t) => t === MessageType.App || t === MessageType.Heartbeat).length,
    )
    for (const t of kinds.slice(rd.sendBeforePersist)) {
      expect([MessageType.App, MessageType.Heartbeat, MessageType.Snap]).not.toContain(t)
    }
  })
})
