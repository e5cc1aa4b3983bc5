import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createMultiRaft, type MultiRaft } from '../../consensus/index.js'
import { createHost, type Host } from '../../node/p2p/host.js'
import { PeerLinks } from '../../node/p2p/links.js'
import { Channel, LinkRaftTransport, validateFrame } from '../../node/raft-transport.js'
import { RecordingStateMachine, TestLogStore } from '../consensus/driver-harness.js'
import { seededRandom } from '../consensus/harness.js'
import { waitFor } from './wait.js'

const log = pino({ level: 'silent' })

interface Member {
  host: Host
  links: PeerLinks
  transport: LinkRaftTransport
  driver: MultiRaft
  sm: RecordingStateMachine
  ticker: NodeJS.Timeout
  dir: string
}

const members: Member[] = []

async function startMember(seed: number, seeds: string[]): Promise<Member> {
  const dir = await mkdtemp(join(tmpdir(), 'am-rt-'))
  const host = await createHost({ dataDir: dir, seeds })
  let transport: LinkRaftTransport | undefined
  const links = new PeerLinks(
    host,
    (from, frame) => {
      if (frame[0] === Channel.Raft) transport?.receive(from, frame.subarray(1))
    },
    log,
  )
  await links.start()
  transport = new LinkRaftTransport(links)
  const driver = createMultiRaft({
    id: host.peerId.toString(),
    transport,
    logStore: new TestLogStore(),
    random: seededRandom(seed),
  })
  const ticker = setInterval(() => driver.tick(), 50)
  const m: Member = { host, links, transport, driver, sm: new RecordingStateMachine(), ticker, dir }
  members.push(m)
  return m
}

afterEach(async () => {
  for (const m of members.splice(0)) {
    clearInterval(m.ticker)
    await m.driver.close()
    await m.links.close()
    await m.host.stop()
    await rm(m.dir, { recursive: true, force: true })
  }
})

describe('Raft over real libp2p links', () => {
  it('elects a leader and replicates to three nodes, and survives a garbage frame', async () => {
    const a = await startMember(1, [])
    const seed = a.host.getMultiaddrs()[0]!.toString()
    const b = await startMember(2, [seed])
    // No membership here: c names both seeds so every pair has a connection (the mesh node learns
    // addresses through gossip instead).
    const c = await startMember(3, [seed, b.host.getMultiaddrs()[0]!.toString()])
    const ids = [a, b, c].map((m) => m.host.peerId.toString())
    for (const m of [a, b, c])
      m.driver.createGroup('ns1', { bootstrap: { voters: ids, learners: [] }, stateMachine: m.sm })
    await waitFor(() => [a, b, c].some((m) => m.driver.status('ns1').role === 3), 'a leader')
    const leader = [a, b, c].find((m) => m.driver.status('ns1').role === 3)!
    await leader.driver.propose('ns1', new TextEncoder().encode('x'))
    await leader.driver.propose('ns1', new TextEncoder().encode('y'))
    await waitFor(
      () => [a, b, c].every((m) => m.sm.payloads('ns1').join() === 'x,y'),
      'x,y applied everywhere',
    )

    const victim = [a, b, c].find((m) => m !== leader)!
    leader.links.send(victim.host.peerId.toString(), new Uint8Array([Channel.Raft, 0xc1, 0xff, 0x00]))
    await waitFor(() => victim.transport.counters.framesRejected === 1, 'the garbage frame to be rejected')
    await leader.driver.propose('ns1', new TextEncoder().encode('z'))
    await waitFor(
      () => [a, b, c].every((m) => m.sm.payloads('ns1').join() === 'x,y,z'),
      'z applied everywhere',
    )
  })
})

describe('frame validation', () => {
  const good = {
    messages: [
      {
        group: 'g',
        message: {
          type: 3,
          from: 'p',
          to: 'q',
          term: 1,
          logTerm: 0,
          index: 0,
          commit: 0,
          reject: false,
          rejectHint: 0,
          entries: [{ term: 1, index: 1, type: 0, data: new Uint8Array([1]) }],
        },
      },
    ],
  }

  it('accepts a well-formed frame from its sender', () => {
    expect(validateFrame(good, 'p')).toBeDefined()
  })

  it.each([
    ['a message claiming another sender', 'someone-else', good],
    [
      'a local-only message type',
      'p',
      { messages: [{ group: 'g', message: { ...good.messages[0]!.message, type: 0 } }] },
    ],
    [
      'a negative term',
      'p',
      { messages: [{ group: 'g', message: { ...good.messages[0]!.message, term: -1 } }] },
    ],
    [
      'entries that are not an array',
      'p',
      { messages: [{ group: 'g', message: { ...good.messages[0]!.message, entries: 'x' } }] },
    ],
    [
      'entry data that is not bytes',
      'p',
      {
        messages: [
          {
            group: 'g',
            message: { ...good.messages[0]!.message, entries: [{ term: 1, index: 1, type: 0, data: 'x' }] },
          },
        ],
      },
    ],
    ['an empty group name', 'p', { messages: [{ group: '', message: good.messages[0]!.message }] }],
    [
      'a snapshot message without a snapshot',
      'p',
      { messages: [{ group: 'g', message: { ...good.messages[0]!.message, type: 9 } }] },
    ],
    ['something that is not a frame', 'p', [1, 2, 3]],
  ])('rejects %s', (_what, from, frame) => {
    expect(validateFrame(frame, from)).toBeUndefined()
  })
})
