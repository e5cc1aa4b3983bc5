import type { Message, NodeId } from '../types.js'
import type { Prng } from './prng.js'

/** Message faults, as probabilities per message sent (0 turns a fault off). */
export interface MessageFaults {
  /** A sent message is lost. */
  dropRate: number
  /** A sent message is delivered twice. */
  duplicateRate: number
  /** A sent message is held back for 1 … `delayStepsMax` steps. */
  delayRate: number
  delayStepsMax: number
  /** Deliver a random ready message instead of the oldest one. */
  reorder: boolean
}

/** The network with every fault off: used after the faults heal. */
export const NO_FAULTS: MessageFaults = {
  dropRate: 0,
  duplicateRate: 0,
  delayRate: 0,
  delayStepsMax: 0,
  reorder: false,
}

/** Counters of what the network did, for the run's statistics. */
export interface NetworkStats {
  sent: number
  delivered: number
  dropped: number
  duplicated: number
  delayed: number
  /** Lost because a partition cut the link at delivery time. */
  partitioned: number
  /** Lost because `inflightMessagesMax` was reached (a real network's full buffer). */
  overflowed: number
}

interface Envelope {
  message: Message
  /** The step from which it may be delivered. */
  readyAt: number
}

/**
 * A deterministic network between simulated nodes. Every choice (drop, duplicate, delay, which
 * ready message goes next) is drawn from the simulator's seeded `Prng`, so a seed fixes the whole
 * schedule. Partitions are checked when a message is delivered, so a link cut while a message is
 * in flight loses it, as on a real network. The queue is bounded by `inflightMessagesMax`.
 */
export class Network {
  faults: MessageFaults
  readonly stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    partitioned: 0,
    overflowed: 0,
  }
  /** The current step, set by the cluster before each step. */
  now = 0
  private queue: Envelope[] = []
  /** Cut directed links, as `from → to` keys. */
  private readonly cut = new Set<string>()

  /** Called with every message the network loses (dropped, cut off, or over the bound). */
  onLost: ((m: Message) => void) | undefined

  constructor(
    private readonly rng: Prng,
    faults: MessageFaults,
    private readonly inflightMessagesMax: number,
  ) {
    this.faults = faults
  }

  /** Puts a message on the wire, applying drop, duplicate and delay faults. */
  send(message: Message): void {
    this.stats.sent++
    const f = this.faults
    if (f.dropRate > 0 && this.rng.chance(f.dropRate)) {
      this.stats.dropped++
      this.onLost?.(message)
      return
    }
    const copies = f.duplicateRate > 0 && this.rng.chance(f.duplicateRate) ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    for (let i = 0; i < copies; i++) {
      if (this.queue.length >= this.inflightMessagesMax) {
        this.stats.overflowed++
        this.onLost?.(message)
        return
      }
      let readyAt = this.now
      if (f.delayRate > 0 && f.delayStepsMax > 0 && this.rng.chance(f.delayRate)) {
        readyAt += 1 + this.rng.int(f.delayStepsMax)
        this.stats.delayed++
      }
      // Each copy gets its own objects, as a decoded wire message would: Raft assigns index and
      // term to a forwarded proposal's entries in place, so a shared duplicate would alias them.
      const entries = message.entries.map((e) => ({ ...e }))
      this.queue.push({ message: { ...message, entries }, readyAt })
    }
  }

  /** How many messages are on the wire (ready or held back). */
  get inflight(): number {
    return this.queue.length
  }

  /**
   * Takes the next ready message off the wire: the oldest, or a random one when reordering.
   * Returns undefined when none is ready, or when the chosen one was lost to a partition.
   */
  take(): Message | undefined {
    let chosen = -1
    if (this.faults.reorder) {
      const ready: number[] = []
      for (let i = 0; i < this.queue.length; i++) if (this.queue[i]!.readyAt <= this.now) ready.push(i)
      if (ready.length > 0) chosen = this.rng.pick(ready)
    } else {
      chosen = this.queue.findIndex((e) => e.readyAt <= this.now)
    }
    if (chosen < 0) return undefined
    const [envelope] = this.queue.splice(chosen, 1)
    const m = envelope!.message
    if (this.cut.has(linkKey(m.from, m.to))) {
      this.stats.partitioned++
      this.onLost?.(m)
      return undefined
    }
    this.stats.delivered++
    return m
  }

  /** Makes every held-back message ready now (used when the faults heal). */
  releaseDelayed(): void {
    for (const e of this.queue) e.readyAt = Math.min(e.readyAt, this.now)
  }

  /** Cuts every link between `a` and `b`, both ways (a symmetric partition). */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut.add(linkKey(x, y))
        this.cut.add(linkKey(y, x))
      }
    }
  }

  /** Cuts the link from `from` to `to` only (an asymmetric partition). */
  cutOneWay(from: NodeId, to: NodeId): void {
    this.cut.add(linkKey(from, to))
  }

  /** Whether messages from `from` to `to` are currently lost. */
  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(linkKey(from, to))
  }

  /** Number of cut directed links. */
  get cutLinks(): number {
    return this.cut.size
  }

  /** Restores every link. */
  healPartitions(): void {
    this.cut.clear()
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`
}
