/**
 * An in-process transport for tests and benchmarks: a hub connecting several drivers. Frames are
 * delivered asynchronously (never from inside `send`), in send order, in batches on the hub's
 * schedule. Links can be cut; a frame over a cut link or to a closed node is dropped and the sender
 * hears `onUnreachable`. An optional codec round-trips every frame (e.g. through msgpackr) to prove
 * frames are plain data.
 */
import type { Frame, Transport, TransportHandler } from '../transport.js'
import type { NodeId } from '../types.js'

/** Encodes frames as bytes and back (the libp2p transport will use msgpackr). */
export interface FrameCodec {
  encode(frame: Frame): Uint8Array
  decode(bytes: Uint8Array): Frame
}

/** Options of {@link MemoryHub}. */
export interface MemoryHubOptions {
  codec?: FrameCodec
  /** Frames in flight across the hub; beyond it frames are dropped as unreachable. */
  queuedFramesMax?: number
  /** Runs a delivery batch soon; default `setImmediate`. */
  schedule?: (run: () => void) => void
}

interface Queued {
  from: NodeId
  to: NodeId
  frame: Frame | Uint8Array
  /** A drop to report to the sender, asynchronously like a real transport would. */
  dropped: boolean
}

/** Connects in-process drivers. */
export class MemoryHub {
  private readonly handlers = new Map<NodeId, TransportHandler>()
  private readonly cut = new Set<string>()
  private queue: Queued[] = []
  private scheduled = false
  private readonly codec: FrameCodec | undefined
  private readonly queuedFramesMax: number
  private readonly scheduleFn: (run: () => void) => void
  /** Every frame sent, by directed pair `from>to` (tests and benchmarks count traffic). */
  readonly framesByPair = new Map<string, number>()
  framesSent = 0
  /** Frames sent but not yet delivered or dropped. */
  get inFlight(): number {
    return this.queue.length
  }
  /** Called on every send, before delivery (tests record traffic). */
  onSend: ((from: NodeId, to: NodeId, frame: Frame) => void) | undefined

  constructor(options: MemoryHubOptions = {}) {
    this.codec = options.codec
    this.queuedFramesMax = options.queuedFramesMax ?? 1_000_000
    this.scheduleFn = options.schedule ?? ((run) => setImmediate(run))
  }

  /** The transport of node `id`. */
  endpoint(id: NodeId): Transport {
    return {
      listen: (handler) => {
        if (this.handlers.has(id)) throw new RangeError(`Cannot listen as '${id}': already listening`)
        this.handlers.set(id, handler)
      },
      send: (peer, frame) => this.send(id, peer, frame),
      close: async () => {
        this.handlers.delete(id)
      },
    }
  }

  /** Cuts both directions between `a` and `b`. */
  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`)
    this.cut.add(`${b}>${a}`)
  }

  /** Cuts `id` off from every other node. */
  isolate(id: NodeId, others: NodeId[]): void {
    for (const o of others) if (o !== id) this.cutLink(id, o)
  }

  heal(): void {
    this.cut.clear()
  }

  private send(from: NodeId, to: NodeId, frame: Frame): void {
    this.onSend?.(from, to, frame)
    this.framesSent++
    const pair = `${from}>${to}`
    this.framesByPair.set(pair, (this.framesByPair.get(pair) ?? 0) + 1)
    if (this.queue.length >= this.queuedFramesMax) {
      this.unreachable(from, to)
      return
    }
    this.queue.push({ from, to, frame: this.codec ? this.codec.encode(frame) : frame, dropped: false })
    this.wake()
  }

  private unreachable(from: NodeId, to: NodeId): void {
    this.queue.push({ from, to, frame: { messages: [] }, dropped: true })
    this.wake()
  }

  private wake(): void {
    if (this.scheduled) return
    this.scheduled = true
    this.scheduleFn(() => this.deliver())
  }

  /** Delivers everything queued so far; frames sent meanwhile go in the next batch. */
  private deliver(): void {
    this.scheduled = false
    const batch = this.queue
    this.queue = []
    for (const q of batch) {
      const target = this.handlers.get(q.to)
      if (!target || q.dropped || this.cut.has(`${q.from}>${q.to}`)) {
        this.handlers.get(q.from)?.onUnreachable(q.to)
        continue
      }
      target.onFrame(q.from, q.frame instanceof Uint8Array ? this.codec!.decode(q.frame) : q.frame)
    }
  }
}
