/**
 * Helpers for the rule-by-rule Raft tests (paper-*.test.ts, features.test.ts), in the manner of
 * etcd's raft_paper_test.go: one node driven by hand, messages built field by field, logs of a
 * given shape. The multi-node network is `TestNetwork` in harness.ts.
 */
import { afterEach, expect } from 'vitest'
import {
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  MemoryStorage,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  type RaftConfig,
  type Ready,
} from '../../consensus/index.js'
import { TestNode } from './harness.js'

/** The paper's algorithm without the thesis' extensions, so each rule can be seen alone. */
export const PAPER: Partial<RaftConfig> = { preVote: false, checkQuorum: false, electionTicks: 10 }

/** The seed of the test that runs now; printed when it fails so the run can be repeated. */
let currentSeed: number | undefined

/** Records `seed` for the running test; a failing test prints it (see the `afterEach` below). */
export function useSeed(seed: number): number {
  currentSeed = seed
  return seed
}

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail' && currentSeed !== undefined) {
    console.error(`seed of failing test '${ctx.task.name}': ${currentSeed}`)
  }
  currentSeed = undefined
})

/** A message with every field zeroed except the ones given (core's `message` is not exported). */
export function msg(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return { term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...fields }
}

/** A normal entry of `term` at `index` (payload optional). */
export function entry(index: number, term: number, data = ''): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(data) }
}

/** Entries 1..n whose terms are `terms` (the way the paper draws logs in Figures 6–8). */
export function logOfTerms(terms: number[]): Entry[] {
  return terms.map((term, i) => entry(i + 1, term, `${i + 1}@${term}`))
}

/** The terms of a node's whole log, for comparing log shapes. */
export function termsOf(node: TestNode): number[] {
  const last = node.node.status().lastIndex
  const out: number[] = []
  for (let i = 1; i <= last; i++) out.push(node.storage.term(i))
  return out
}

export interface NodeSpec {
  id: NodeId
  voters: NodeId[]
  learners?: NodeId[]
  /** The durable log the node starts with. */
  log?: Entry[]
  hardState?: Partial<HardState>
  config?: Partial<RaftConfig>
  seed?: number
}

/** A node over a storage that already holds `log` and `hardState`, as if restarted after a crash. */
export function makeNode(spec: NodeSpec): TestNode {
  const conf: ConfState = { voters: spec.voters, learners: spec.learners ?? [] }
  const storage = MemoryStorage.bootstrap(conf)
  if (spec.log) storage.append(spec.log)
  storage.setHardState({ term: 0, vote: NONE, commit: 0, ...spec.hardState })
  const seed = spec.seed ?? 1
  currentSeed ??= seed
  return new TestNode(spec.id, storage, { ...PAPER, ...spec.config }, seed)
}

/** Handles every pending Ready of `node` (persist, apply, advance) and returns their messages. */
export function drain(node: TestNode): Message[] {
  const out: Message[] = []
  while (node.node.hasReady()) out.push(...node.handleReady())
  return out
}

/** Takes one Ready without handling it, for assertions on what travels together; then advances. */
export function takeReady(node: TestNode): Ready {
  expect(node.node.hasReady()).toBe(true)
  const rd = node.node.ready()
  node.storage.append(rd.entries)
  if (rd.hardState) node.storage.setHardState(rd.hardState)
  node.node.advance(rd)
  return rd
}

/** Messages of one type from a list. */
export function ofType(messages: Message[], type: MessageType): Message[] {
  return messages.filter((m) => m.type === type)
}

/** Ticks `node` until `done()` holds or `maxTicks` pass; returns the number of ticks. */
export function tickUntil(node: TestNode, done: () => boolean, maxTicks: number): number {
  for (let ticks = 1; ticks <= maxTicks; ticks++) {
    node.node.tick()
    if (done()) return ticks
  }
  throw new Error(`condition not reached within ${maxTicks} ticks`)
}

/** Makes a node leader of a cluster by hand: campaign, feed it grants, drain. */
export function becomeLeaderByHand(node: TestNode, voters: NodeId[]): Message[] {
  node.node.campaign()
  const out = drain(node)
  const term = node.node.status().term
  for (const v of voters) {
    if (v === node.id) continue
    node.node.step(msg({ type: MessageType.VoteResp, from: v, to: node.id, term }))
  }
  out.push(...drain(node))
  return out
}

/** `from` acknowledges the leader's log up to `index` (an AppResp of the current term). */
export function ack(leader: TestNode, from: NodeId, index: number): void {
  const term = leader.node.status().term
  leader.node.step(msg({ type: MessageType.AppResp, from, to: leader.id, term, index }))
}

/** Node 'a' made leader by hand, every other voter having acknowledged its no-op. */
export function leaderWithAckedNoop(voters: NodeId[], config: Partial<RaftConfig> = {}): TestNode {
  const a = makeNode({ id: 'a', voters, config })
  becomeLeaderByHand(a, voters)
  for (const v of voters.slice(1)) ack(a, v, 1)
  drain(a)
  return a
}
