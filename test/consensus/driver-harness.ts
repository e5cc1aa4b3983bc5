/**
 * Test fixtures for the multi-Raft driver: the MemoryLogStore with a record of its batches, a
 * recording state machine, and a cluster of drivers on one in-memory hub that tests drive tick by
 * tick, waiting on events rather than on time.
 */
import {
  createMultiRaft,
  type Entry,
  type FrameCodec,
  type GroupWrite,
  MemoryHub,
  MemoryLogStore,
  type MultiRaft,
  type MultiRaftConfig,
  type Snapshot,
  type StateMachine,
} from '../../consensus/index.js'
import { seededRandom } from './harness.js'

/** The consensus MemoryLogStore, recording the groups of every persist batch. */
export class TestLogStore extends MemoryLogStore {
  /** The groups of each `persist` call, in call order. */
  readonly batches: string[][] = []
  /** Each `persist` call's writes and whether it asked for an fsync, in call order. */
  readonly syncs: Array<{ sync: boolean; writes: GroupWrite[] }> = []

  override async persist(
    writes: GroupWrite[],
    options?: { signal?: AbortSignal; sync?: boolean },
  ): Promise<void> {
    if (this.batches.length < 10_000) {
      this.batches.push(writes.map((w) => w.group))
      this.syncs.push({ sync: options?.sync !== false, writes })
    }
    await super.persist(writes, options)
  }
}

const dec = new TextDecoder()

/** Records every applied payload per group, as text. */
export class RecordingStateMachine implements StateMachine {
  readonly applied = new Map<string, string[]>()
  readonly appliedIndex = new Map<string, number>()
  snapshotsApplied = 0

  apply(entries: Entry[], group: string, appliedIndex: number): void {
    let list = this.applied.get(group)
    if (!list) {
      list = []
      this.applied.set(group, list)
    }
    for (const e of entries) list.push(dec.decode(e.data))
    this.appliedIndex.set(group, appliedIndex)
  }

  applySnapshot(snapshot: Snapshot, group: string): void {
    this.snapshotsApplied++
    this.applied.set(group, JSON.parse(dec.decode(snapshot.data)) as string[])
    this.appliedIndex.set(group, snapshot.meta.index)
  }

  snapshot(group: string): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.applied.get(group) ?? []))
  }

  payloads(group: string): string[] {
    return this.applied.get(group) ?? []
  }
}

/** One node of a test cluster. */
export interface TestMember {
  id: string
  driver: MultiRaft
  store: TestLogStore
  sm: RecordingStateMachine
}

/** Drivers on one hub, each with its own store and state machine. */
export class TestCluster {
  readonly hub: MemoryHub
  readonly members: TestMember[]

  constructor(ids: string[], seed: number, config: MultiRaftConfig = {}, codec?: FrameCodec) {
    this.hub = new MemoryHub(codec ? { codec } : {})
    const random = seededRandom(seed)
    this.members = ids.map((id) => {
      const store = new TestLogStore()
      const driver = createMultiRaft({
        id,
        transport: this.hub.endpoint(id),
        logStore: store,
        random,
        config,
      })
      return { id, driver, store, sm: new RecordingStateMachine() }
    })
  }

  get ids(): string[] {
    return this.members.map((m) => m.id)
  }

  member(id: string): TestMember {
    const m = this.members.find((x) => x.id === id)
    if (!m) throw new Error(`no member ${id}`)
    return m
  }

  /** Creates `count` groups named g0, g1, … on every member, all three voting. */
  createGroups(count: number): string[] {
    const names = Array.from({ length: count }, (_, i) => `g${i}`)
    const conf = { voters: this.ids, learners: [] }
    for (const name of names) {
      for (const m of this.members) m.driver.createGroup(name, { bootstrap: conf, stateMachine: m.sm })
    }
    return names
  }

  /** Waits until no frame is in flight and no driver has a turn running or due. */
  async settle(): Promise<void> {
    for (let i = 0; i < 100_000; i++) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      if (this.hub.inFlight === 0 && this.members.every((m) => !m.driver.stats().busy)) return
    }
    throw new Error('cluster did not settle within 100000 event-loop turns')
  }

  /** Ticks every driver and settles, until `done()` holds; fails after `ticksMax` ticks. */
  async tickUntil(done: () => boolean, ticksMax: number, what: string): Promise<number> {
    for (let t = 0; t < ticksMax; t++) {
      if (done()) return t
      await this.tickAll()
    }
    if (done()) return ticksMax
    throw new Error(`${what}: not reached within ${ticksMax} ticks`)
  }

  async tickAll(): Promise<void> {
    for (const m of this.members) m.driver.tick()
    await this.settle()
  }

  /** The leader every live member agrees on for `group`, or undefined. */
  agreedLeader(group: string, among: TestMember[] = this.members): string | undefined {
    const leads = among.map((m) => m.driver.status(group).lead)
    const lead = leads[0]
    return lead && leads.every((l) => l === lead) ? lead : undefined
  }

  async close(): Promise<void> {
    for (const m of this.members) await m.driver.close()
  }
}
