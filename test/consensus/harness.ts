/**
 * A small synchronous test network for Raft unit tests (in the manner of etcd's `network` in
 * raft_test.go): every node's Ready is handled exactly as the contract says — persist, send, apply,
 * advance — and messages are delivered until none are left. Links can be cut and messages
 * filtered. The randomised simulator lives in consensus/sim; this is for scripted rules.
 */
import {
  type ConfState,
  decodeConfChange,
  type Entry,
  EntryType,
  MemoryStorage,
  type Message,
  MessageType,
  type NodeId,
  type RaftConfig,
  RawNode,
  type ReadState,
  type Snapshot,
} from '../../consensus/index.js'

/** mulberry32: a tiny seeded PRNG so every test is reproducible. */
export function seededRandom(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296
    return Math.floor(r * n)
  }
}

const enc = new TextEncoder()
const dec = new TextDecoder()
export const bytes = (s: string): Uint8Array => enc.encode(s)
export const text = (b: Uint8Array): string => dec.decode(b)

/** One node of the test network with its durable storage and applied state machine. */
export class TestNode {
  node: RawNode
  readonly storage: MemoryStorage
  applied: Entry[] = []
  readStates: ReadState[] = []
  snapshotsApplied: Snapshot[] = []
  appliedIndex = 0
  /** Rebuilds `applied` from a snapshot's data; without it, `applied` keeps only what was applied here. */
  restoreSnapshot: ((snapshot: Snapshot) => Entry[]) | undefined

  constructor(
    readonly id: NodeId,
    storage: MemoryStorage,
    private readonly config: Partial<RaftConfig>,
    seed: number,
  ) {
    this.storage = storage
    this.node = new RawNode({ id, storage, random: seededRandom(seed), ...config })
  }

  /** Handles one Ready per the contract; returns the messages to deliver. */
  handleReady(): Message[] {
    if (!this.node.hasReady()) return []
    const rd = this.node.ready()
    if (rd.snapshot) this.storage.applySnapshot(rd.snapshot)
    this.storage.append(rd.entries)
    if (rd.hardState) this.storage.setHardState(rd.hardState)
    if (rd.snapshot) {
      this.snapshotsApplied.push(rd.snapshot)
      this.appliedIndex = rd.snapshot.meta.index
      if (this.restoreSnapshot) this.applied = this.restoreSnapshot(rd.snapshot)
    }
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) this.node.applyConfChange(decodeConfChange(e.data))
      else if (e.data.byteLength > 0) this.applied.push(e)
      this.appliedIndex = e.index
    }
    this.readStates.push(...rd.readStates)
    this.node.advance(rd)
    return rd.messages
  }

  /** Crash and restart: a new RawNode over what was persisted. */
  restart(seed: number): void {
    this.node = new RawNode({
      id: this.id,
      storage: this.storage,
      random: seededRandom(seed),
      applied: this.appliedIndex,
      ...this.config,
    })
  }

  payloads(): string[] {
    return this.applied.map((e) => text(e.data))
  }
}

/** A set of nodes with synchronous delivery, cut links and message filters. */
export class TestNetwork {
  readonly nodes = new Map<NodeId, TestNode>()
  private readonly cut = new Set<string>()
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true
  /** Every message delivered, for assertions on traffic. */
  readonly delivered: Message[] = []

  constructor(ids: NodeId[], config: Partial<RaftConfig> = {}, seed = 1, conf?: ConfState) {
    const members = conf ?? { voters: ids, learners: [] }
    ids.forEach((id, i) => {
      this.nodes.set(id, new TestNode(id, MemoryStorage.bootstrap(members), config, seed * 1000 + i))
    })
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id)
    if (!n) throw new Error(`no node ${id}`)
    return n
  }

  raw(id: NodeId): RawNode {
    return this.node(id).node
  }

  /** Adds a node that starts empty (it will be caught up by appends or a snapshot). */
  addNode(id: NodeId, config: Partial<RaftConfig> = {}, seed = 99): TestNode {
    const n = new TestNode(id, new MemoryStorage(), config, seed)
    this.nodes.set(id, n)
    return n
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other !== id) {
        this.cut.add(`${id}>${other}`)
        this.cut.add(`${other}>${id}`)
      }
    }
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`)
    this.cut.add(`${b}>${a}`)
  }

  heal(): void {
    this.cut.clear()
    this.filter = () => true
  }

  /** Delivers messages until every node is quiet. Returns how many messages were delivered. */
  settle(maxRounds = 10_000): number {
    let delivered = 0
    for (let round = 0; round < maxRounds; round++) {
      const outgoing: Message[] = []
      for (const n of this.nodes.values()) {
        while (n.node.hasReady()) outgoing.push(...n.handleReady())
      }
      if (outgoing.length === 0) return delivered
      for (const m of outgoing) {
        if (this.cut.has(`${m.from}>${m.to}`) || !this.filter(m)) continue
        const target = this.nodes.get(m.to)
        if (!target) continue
        this.delivered.push(m)
        target.node.step(m)
        delivered++
      }
    }
    throw new Error('network did not settle')
  }

  /** Ticks every node once and settles. */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) n.node.tick()
      this.settle()
    }
  }

  /** Makes `id` campaign and settles. */
  elect(id: NodeId): void {
    this.raw(id).campaign()
    this.settle()
  }

  propose(id: NodeId, payload: string): void {
    this.raw(id).propose(bytes(payload))
    this.settle()
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.node.status().role === 3).map((n) => n.id)
  }

  countDelivered(type: MessageType): number {
    return this.delivered.filter((m) => m.type === type).length
  }
}

export { MessageType }
