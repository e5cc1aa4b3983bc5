/**
 * The deterministic cluster that scenario scripts drive: RawNodes over MemoryStorage, a FIFO
 * network of in-flight messages, partitions, and crash/restart that keeps only what a node
 * persisted. Every Ready is handled exactly as the contract says (persist, send, apply, advance)
 * and printed, so a script's expected output is a trace of the protocol.
 */
import {
  type ConfState,
  decodeConfChange,
  EntryType,
  MemoryStorage,
  type Message,
  type NodeId,
  type RaftConfig,
  RawNode,
  type Snapshot,
} from '../../../consensus/index.js'
import { seededRandom } from '../harness.js'
import { byNodeId, formatConf, formatMessage, formatReady } from './format.js'

/** Rounds of `stabilize` before it gives up: a script that never goes quiet is a bug. */
export const stabilizeRoundsMax = 1_000

const enc = new TextEncoder()
const dec = new TextDecoder()

/** The node's state machine: the payload of every applied normal entry, with its index. */
interface AppliedEntry {
  index: number
  data: string
}

/** One member of the scenario cluster. `raw` is undefined while the node is crashed. */
export class ScenarioNode {
  raw: RawNode | undefined
  applied: AppliedEntry[] = []
  appliedIndex = 0
  restarts = 0

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
    readonly config: Omit<RaftConfig, 'id' | 'storage' | 'random'>,
    readonly seed: number,
  ) {
    this.raw = this.newRawNode()
  }

  /** A RawNode over what is persisted; each restart draws from a fresh, still seeded, stream. */
  newRawNode(): RawNode {
    return new RawNode({
      ...this.config,
      id: this.id,
      storage: this.storage,
      random: seededRandom(this.seed + this.restarts * 7919),
      applied: this.appliedIndex,
    })
  }

  /** The state machine's data as a snapshot carries it: the applied payloads up to `index`. */
  snapshotData(index: number): Uint8Array {
    return enc.encode(JSON.stringify(this.applied.filter((a) => a.index <= index).map((a) => a.data)))
  }

  restoreSnapshot(s: Snapshot): void {
    const text = dec.decode(s.data)
    const payloads = text === '' ? [] : (JSON.parse(text) as string[])
    // Indexes inside a snapshot are not kept: only order and content matter for comparison.
    this.applied = payloads.map((data) => ({ index: s.meta.index, data }))
    this.appliedIndex = s.meta.index
  }
}

/** A message whose delivery the network refused, with the reason printed beside it. */
type Verdict = 'deliver' | 'partition' | 'crashed' | 'unknown'

export class ScenarioCluster {
  readonly nodes = new Map<NodeId, ScenarioNode>()
  /** Messages sent and not yet delivered, oldest first. */
  queue: Message[] = []
  /** Directed links that drop messages (`from>to`). */
  private readonly cut = new Set<string>()

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort(byNodeId)
  }

  node(id: NodeId): ScenarioNode {
    const n = this.nodes.get(id)
    if (!n) throw new RangeError(`Cannot find node '${id}'`)
    return n
  }

  /** The running RawNode of `id`; a crashed node cannot take input. */
  raw(id: NodeId): RawNode {
    const n = this.node(id)
    if (!n.raw) throw new RangeError(`Cannot use node '${id}': it is crashed`)
    return n.raw
  }

  add(id: NodeId, conf: ConfState | undefined, config: ScenarioNode['config'], seed: number): void {
    if (this.nodes.has(id)) throw new RangeError(`Cannot add node '${id}': it exists`)
    const storage = conf ? MemoryStorage.bootstrap(conf) : new MemoryStorage()
    this.nodes.set(id, new ScenarioNode(id, storage, config, seed))
  }

  /** Handles one Ready of `id` per the contract and prints it. */
  processReady(id: NodeId, out: string[]): boolean {
    const n = this.node(id)
    const raw = n.raw
    if (!raw?.hasReady()) return false
    const rd = raw.ready()
    out.push(`> ${id} handling Ready`)
    out.push(...formatReady(rd))
    // 1. persist
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot)
    n.storage.append(rd.entries)
    if (rd.hardState) n.storage.setHardState(rd.hardState)
    // 2. send
    this.queue.push(...rd.messages)
    // 3. apply
    if (rd.snapshot) n.restoreSnapshot(rd.snapshot)
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) {
        const conf = raw.applyConfChange(decodeConfChange(e.data))
        out.push(`  applied conf change ${e.index}: ${formatConf(conf)}`)
      } else if (e.data.byteLength > 0) {
        n.applied.push({ index: e.index, data: dec.decode(e.data) })
      }
      n.appliedIndex = e.index
    }
    raw.advance(rd)
    return true
  }

  private verdict(m: Message): Verdict {
    const target = this.nodes.get(m.to)
    if (!target) return 'unknown'
    if (!target.raw) return 'crashed'
    if (this.cut.has(`${m.from}>${m.to}`)) return 'partition'
    return 'deliver'
  }

  /**
   * Delivers (or with `drop`, discards) every queued message addressed to `id` that matches
   * `filter`, in the order sent. Returns how many were taken off the queue.
   */
  deliver(id: NodeId, out: string[], drop = false, filter: (m: Message) => boolean = () => true): number {
    const mine = this.queue.filter((m) => m.to === id && filter(m))
    if (mine.length === 0) return 0
    this.queue = this.queue.filter((m) => !(m.to === id && filter(m)))
    out.push(`> ${id} receiving messages`)
    for (const m of mine) {
      const verdict = drop ? 'by the script' : this.verdict(m)
      if (verdict !== 'deliver') {
        out.push(`  ${formatMessage(m)} DROPPED (${verdict})`)
        continue
      }
      out.push(`  ${formatMessage(m)}`)
      try {
        this.node(id).raw?.step(m)
      } catch (e) {
        out.push(`  error: ${describeError(e)}`)
      }
    }
    return mine.length
  }

  /** Handles Readys and delivers messages among `ids` until none of them has anything to do. */
  stabilize(ids: NodeId[], out: string[]): void {
    for (let round = 0; round < stabilizeRoundsMax; round++) {
      let busy = false
      for (const id of ids) {
        while (this.processReady(id, out)) busy = true
      }
      for (const id of ids) {
        if (this.deliver(id, out) > 0) busy = true
      }
      if (!busy) return
    }
    throw new Error(`Cannot stabilize: still busy after ${stabilizeRoundsMax} rounds`)
  }

  /** Cuts every link between different groups; nodes named in no group form one more group. */
  partition(groups: NodeId[][]): void {
    const listed = new Set(groups.flat())
    const rest = this.ids().filter((id) => !listed.has(id))
    const all = rest.length > 0 ? [...groups, rest] : groups
    const groupOf = new Map<NodeId, number>()
    all.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i)
    })
    for (const a of this.ids()) {
      for (const b of this.ids()) {
        if (groupOf.get(a) !== groupOf.get(b)) this.cut.add(`${a}>${b}`)
      }
    }
  }

  /** Cuts the directed link `from>to` only (asymmetric partitions). */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`)
  }

  heal(): void {
    this.cut.clear()
  }

  /** Lists the cut links, for scripts to show what the network looks like. */
  cutLinks(): string[] {
    return [...this.cut].sort()
  }

  /** The node stops: whatever it had not persisted (unstable entries, soft state) is gone. */
  crash(id: NodeId): void {
    const n = this.node(id)
    if (!n.raw) throw new RangeError(`Cannot crash node '${id}': it is already crashed`)
    n.raw = undefined
  }

  restart(id: NodeId): void {
    const n = this.node(id)
    if (n.raw) throw new RangeError(`Cannot restart node '${id}': it is running`)
    n.restarts++
    n.raw = n.newRawNode()
  }
}

/** One line for an error a command caused: its class, code or reason, and message. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e)
  const reason = (e as { reason?: unknown }).reason
  return `${e.name}${typeof reason === 'string' ? ` (${reason})` : ''}: ${e.message}`
}
