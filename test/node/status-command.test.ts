import { describe, expect, it } from 'vitest'
import {
  checkStatusDocs,
  formatStatus,
  type NamespaceDoc,
  replicaHealth,
  type StatusDocs,
  shortPeer,
} from '../../node/status-command.js'

// Peer ids shaped like libp2p's Ed25519 ones (52 characters); the short form is the last 8.
const A = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaNodeAAA1'
const B = '12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbNodeBBB2'
const C = '12D3KooWCccccccccccccccccccccccccccccccccccccccNodeCCC3'
const D = '12D3KooWDddddddddddddddddddddddddddddddddddddddNodeDDD4'

function ns(over: Partial<NamespaceDoc>): NamespaceDoc {
  return {
    name: 'chat',
    replicationFactor: 3,
    voters: [A, B, C],
    learners: [],
    leader: B,
    moduleVersion: 0,
    moduleHash: '',
    module: null,
    ...over,
  }
}

/** Three nodes seen from A: B alive, C dead, D (a learner somewhere) alive. */
function docs(namespaces: NamespaceDoc[]): StatusDocs {
  return {
    status: { peer: A, system: { joined: true, leader: A, term: 7, voters: [A, B, C], learners: [D] } },
    members: {
      self: { peer: A, addrs: [`/ip4/127.0.0.1/tcp/7070/p2p/${A}`] },
      members: [
        { peer: C, state: 'dead', gateway: 'http://127.0.0.1:8082' },
        { peer: B, state: 'alive', gateway: 'http://127.0.0.1:8081', rttMs: 0.4321 },
        { peer: D, state: 'alive', gateway: '' },
      ],
    },
    namespaces: { namespaces },
  }
}

const aliveFromA = (p: string) => p === A || p === B || p === D

describe('shortPeer', () => {
  it('keeps the last 8 characters of a peer id behind an ellipsis', () => {
    expect(shortPeer(A)).toBe('…NodeAAA1')
    expect(shortPeer('n1')).toBe('n1')
  })
})

describe('replicaHealth', () => {
  it('is ok when every voter is alive, there are as many as the factor asks, and no learner', () => {
    expect(replicaHealth(ns({ voters: [A, B, D] }), aliveFromA, A)).toBe('ok')
  })

  it('is degraded with the live count when a voter is not alive', () => {
    expect(replicaHealth(ns({}), aliveFromA, A)).toBe('degraded (2/3 live)')
  })

  it('is degraded when fewer voters were placed than the replication factor', () => {
    expect(replicaHealth(ns({ voters: [A] }), aliveFromA, A)).toBe('degraded (1/3 live)')
  })

  it('is repairing while a learner catches up, with the live count while a voter is down', () => {
    expect(replicaHealth(ns({ voters: [A, B, D], learners: [C] }), aliveFromA, A)).toBe('repairing')
    expect(replicaHealth(ns({ learners: [D] }), aliveFromA, A)).toBe('repairing (2/3 live)')
  })

  it('is no leader when this node hosts a replica and knows no leader, whatever else holds', () => {
    expect(replicaHealth(ns({ leader: '' }), aliveFromA, A)).toBe('no leader')
    expect(replicaHealth(ns({ leader: '', learners: [D] }), aliveFromA, B)).toBe('no leader')
  })

  it('does not claim no leader on a node that hosts no replica (it cannot know)', () => {
    expect(replicaHealth(ns({ voters: [A, B, D], leader: '' }), aliveFromA, C)).toBe('ok')
  })
})

describe('formatStatus', () => {
  it('reports the node, _system, members and each namespace with its leader, module and health', () => {
    const text = formatStatus(
      docs([
        ns({ name: 'orders', voters: [A, B, D], leader: A, module: { version: 2, hash: 'ab12cd34ef56' } }),
        ns({ name: 'chat' }),
      ]),
      'http://127.0.0.1:8080',
    )
    expect(text).toBe(
      [
        `Node ${A} at http://127.0.0.1:8080`,
        '  _system   leader …NodeAAA1 (this node), term 7',
        '            voters   …NodeAAA1 …NodeBBB2 …NodeCCC3',
        '            learners …NodeDDD4',
        '',
        'Members (3 besides this node)',
        '  PEER       STATE  GATEWAY                RTT ms',
        '  …NodeAAA1  self   http://127.0.0.1:8080  -',
        '  …NodeBBB2  alive  http://127.0.0.1:8081  0.4',
        '  …NodeCCC3  dead   http://127.0.0.1:8082  -',
        '  …NodeDDD4  alive  -                      -',
        '',
        'Namespaces (2)',
        '  NAME    RF  LEADER     VOTERS  LEARNERS  MODULE       HEALTH',
        '  chat    3   …NodeBBB2  3       0         none         degraded (2/3 live)',
        '  orders  3   …NodeAAA1  3       0         v2 ab12cd34  ok',
        '',
      ].join('\n'),
    )
  })

  it('says unknown for the leader of a namespace this node hosts no replica of, with a note', () => {
    const text = formatStatus(docs([ns({ voters: [B, C, D], leader: '' })]))
    expect(text).toMatch(/chat {2}3 {3}unknown {2}3 {7}0 {9}unknown {2}degraded \(2\/3 live\)/)
    expect(text).toContain('unknown: this node hosts no replica of it')
  })

  it('says none for the leader a replica here does not know', () => {
    expect(formatStatus(docs([ns({ leader: '' })]))).toMatch(/chat {2}3 {3}none {4}3 .* no leader/)
  })

  it('reports a node that has not joined _system yet, and an empty catalog', () => {
    const d = docs([])
    d.status.system = { joined: false, leader: '', term: 0, voters: [], learners: [] }
    const text = formatStatus(d)
    expect(text).toContain(`Node ${A}\n  _system   not joined yet`)
    expect(text).toContain('Namespaces (0)\n  (none)')
  })
})

describe('checkStatusDocs', () => {
  it('accepts the three documents and names the first field that is missing', () => {
    const good = docs([ns({})])
    expect(checkStatusDocs(good)).toBe(good)
    expect(() => checkStatusDocs({ ...good, status: { system: {} } })).toThrow(
      new TypeError("Cannot read the node's answer: GET /v1/status 'peer' is missing or malformed"),
    )
    expect(() => checkStatusDocs({ ...good, members: { self: {} } })).toThrow(/GET \/v1\/members 'members'/)
    expect(() => checkStatusDocs({ ...good, namespaces: null })).toThrow(/GET \/v1\/namespaces/)
  })
})
