/**
 * Namespace snapshots over libp2p. A namespace's Raft snapshot is only a small *marker*: its state
 * already lives durably in the namespace database at the applied index, so compaction copies
 * nothing. A replica that is sent such a snapshot pulls a consistent copy of the database from a
 * replica that has applied at least the snapshot's index — the marker's maker first (normally the
 * leader), then the other members of the snapshot's membership — as a chunked flow over the RPC
 * channel of the peer links, and installs it (see docs/architecture.md, "Namespace snapshots"):
 *
 *   ns.snap.open  { ns, minIndex } → { id, meta }   the source copies the database (VACUUM INTO)
 *   ns.snap.chunk { id, n }        → { data }       chunk n, in order; the last one may be asked again
 *   ns.snap.close { id }           → { ok }         the source removes its copy
 *
 * The puller has one chunk request in flight, asked while the previous chunk is being written,
 * and asks again when one is lost; the source bounds the snapshots it keeps open and drops one
 * left idle.
 */
import { randomBytes } from 'node:crypto'
import { Packr } from 'msgpackr'
import type { Logger } from 'pino'
import type { Snapshot } from '../consensus/index.js'
import {
  createNamespaceSnapshot,
  installNamespaceSnapshot,
  type NamespaceSnapshot,
  type NamespaceSnapshotMeta,
  type NamespaceStore,
} from '../storage/index.js'
import { NodeError } from './errors.js'
import type { Rpc } from './rpc.js'

const packr = new Packr({ useRecords: false })

/**
 * Bytes one chunk may carry on the wire. The links' default `frameBytesMax` is 16 MiB; a chunk
 * (1 MiB by default, `SNAPSHOT_CHUNK_BYTES_DEFAULT`) stays far below it with its RPC envelope.
 */
export const SNAPSHOT_WIRE_CHUNK_BYTES_MAX = 4 << 20

/** Times the puller asks for one chunk when the request or its answer is lost (timeout, no link). */
export const SNAPSHOT_CHUNK_ATTEMPTS_MAX = 3

/** What a namespace's Raft snapshot carries: where the maker's database stood, and who made it. */
export interface SnapshotMarker {
  namespace: string
  index: number
  term: number
  /** Peer id of the node whose log was compacted (it holds the database at `index` or later). */
  maker: string
}

export function encodeSnapshotMarker(marker: SnapshotMarker): Uint8Array {
  return packr.pack(marker)
}

/** The marker in a snapshot's data, or undefined when it is not one (then no maker is known). */
export function decodeSnapshotMarker(data: Uint8Array): SnapshotMarker | undefined {
  try {
    const m = packr.unpack(data) as SnapshotMarker
    if (typeof m?.namespace !== 'string' || typeof m.maker !== 'string') return undefined
    if (!Number.isInteger(m.index) || !Number.isInteger(m.term)) return undefined
    return m
  } catch {
    return undefined
  }
}

/** A peer cannot serve the snapshot asked for: it does not host the namespace, or is behind. */
export class SnapshotSourceError extends NodeError {
  override name = 'SnapshotSourceError'
  constructor(message: string) {
    super('ACTORMESH_SNAPSHOT_SOURCE', message, true)
  }
}

/** No such snapshot session on the source (never opened, closed, expired, another peer's), or a chunk out of order. */
export class SnapshotSessionError extends NodeError {
  override name = 'SnapshotSessionError'
  constructor(message: string) {
    super('ACTORMESH_SNAPSHOT_SESSION', message, true)
  }
}

/** The source already keeps `openSnapshotsMax` snapshots open. */
export class SnapshotBusyError extends NodeError {
  override name = 'SnapshotBusyError'
  constructor(message: string) {
    super('ACTORMESH_RPC_BUSY', message, true)
  }
}

/** Limits of the snapshot flow; each has a default. */
export interface NamespaceSnapshotOptions {
  /** Snapshots this node serves at once (each is a temp copy of a database on disk). */
  openSnapshotsMax?: number
  /** A served snapshot nobody asked a chunk of for this long is dropped. */
  snapshotIdleMs?: number
  /** How long the puller waits for `ns.snap.open` (the source copies the whole database first). */
  openTimeoutMs?: number
  /** How long the puller waits for one chunk. */
  chunkTimeoutMs?: number
  /** Longest wait between two rounds over every source when none could serve. */
  retryDelayMsMax?: number
}

/** The state machine's way to install a namespace snapshot (`NamespaceStateMachine.open`). */
export interface NamespaceSnapshotTransfer {
  /** This node's peer id: the maker named in the markers of its own snapshots. */
  readonly self: string
  /** Fetches a copy of the database at `snapshot.meta.index` or later and installs it in `store`. */
  install(store: NamespaceStore, snapshot: Snapshot, options?: { signal?: AbortSignal }): Promise<void>
}

/** Progress of one pull. */
export interface SnapshotProgress {
  bytes: number
  total: number
}

interface Session {
  id: string
  peer: string
  snap: NamespaceSnapshot
  iter: AsyncIterator<Uint8Array>
  /** The number of the chunk `iter` yields next. */
  next: number
  /** The last chunk served, kept so that a retried request gets it again. */
  last: Uint8Array | undefined
  timer: NodeJS.Timeout
  /** Serialises the session's chunk reads (the iterator is sequential). */
  queue: Promise<unknown>
  /** Set once the session is being ended: refused to pullers, counted until its copy is removed. */
  ended: Promise<void> | undefined
}

/**
 * Both ends of the namespace snapshot flow on one node: the source (`open`, `chunk`, `close`,
 * registered as the `ns.snap.*` RPC handlers) and the puller (`install`).
 */
export class NamespaceSnapshots implements NamespaceSnapshotTransfer {
  private readonly sessions = new Map<string, Session>()
  /** Snapshots being copied (counted against `openSnapshotsMax` before they have a session). */
  private opening = 0
  private closed = false
  private readonly openSnapshotsMax: number
  private readonly snapshotIdleMs: number
  private readonly openTimeoutMs: number
  private readonly chunkTimeoutMs: number
  private readonly retryDelayMsMax: number

  constructor(
    readonly self: string,
    private readonly rpc: Pick<Rpc, 'request'>,
    private readonly stores: (namespace: string) => NamespaceStore | undefined,
    private readonly log: Logger,
    options: NamespaceSnapshotOptions = {},
  ) {
    this.openSnapshotsMax = options.openSnapshotsMax ?? 4
    this.snapshotIdleMs = options.snapshotIdleMs ?? 30_000
    this.openTimeoutMs = options.openTimeoutMs ?? 60_000
    this.chunkTimeoutMs = options.chunkTimeoutMs ?? 10_000
    this.retryDelayMsMax = options.retryDelayMsMax ?? 5_000
  }

  /** Snapshots this node is serving now (a closed one counts until its temp copy is removed). */
  get openCount(): number {
    return this.sessions.size
  }

  // ---- source ------------------------------------------------------------------------------------

  /** `ns.snap.open`: copies the namespace's database and opens a session for `from` to pull it. */
  async open(
    from: string,
    payload: unknown,
    signal?: AbortSignal,
  ): Promise<{ id: string; meta: NamespaceSnapshotMeta }> {
    signal?.throwIfAborted()
    const { ns, minIndex } = (payload ?? {}) as { ns?: unknown; minIndex?: unknown }
    if (typeof ns !== 'string' || !Number.isInteger(minIndex) || (minIndex as number) < 0)
      throw new TypeError(`Cannot open a snapshot: malformed request ${shown(payload)}`)
    const store = this.stores(ns)
    if (!store) throw new SnapshotSourceError(`Cannot serve a snapshot of namespace '${ns}': not hosted here`)
    const applied = store.applied().index
    if (applied < (minIndex as number))
      throw new SnapshotSourceError(
        `Cannot serve a snapshot of namespace '${ns}' at ${minIndex}: applied only ${applied} here`,
      )
    if (this.closed || this.sessions.size + this.opening >= this.openSnapshotsMax)
      throw new SnapshotBusyError(
        `Cannot open a snapshot of namespace '${ns}': ${this.openSnapshotsMax} snapshots are open here; retry later`,
      )
    this.opening++
    let snap: NamespaceSnapshot
    try {
      snap = await createNamespaceSnapshot(store, signal ? { signal } : undefined)
    } finally {
      this.opening--
    }
    if (this.closed) {
      await snap.discard()
      throw new SnapshotBusyError(`Cannot open a snapshot of namespace '${ns}': the node is closing`)
    }
    const id = randomBytes(12).toString('hex')
    const session: Session = {
      id,
      peer: from,
      snap,
      iter: snap.chunks[Symbol.asyncIterator](),
      next: 0,
      last: undefined,
      timer: this.idleTimer(id),
      queue: Promise.resolve(),
      ended: undefined,
    }
    this.sessions.set(id, session)
    this.log.debug({ ns, id, peer: from, index: snap.meta.index, bytes: snap.meta.bytes }, 'serving snapshot')
    return { id, meta: snap.meta }
  }

  /** `ns.snap.chunk`: chunk `n` of a session (the next one, or the last one again). */
  async chunk(from: string, payload: unknown): Promise<{ data: Uint8Array }> {
    const { id, n } = (payload ?? {}) as { id?: unknown; n?: unknown }
    if (typeof id !== 'string' || !Number.isInteger(n) || (n as number) < 0)
      throw new TypeError(`Cannot read a snapshot chunk: malformed request ${shown(payload)}`)
    const s = this.session(from, id)
    clearTimeout(s.timer)
    s.timer = this.idleTimer(id)
    const read = s.queue.then(() => this.read(s, n as number))
    s.queue = read.catch(() => {})
    return { data: await read }
  }

  /** `ns.snap.close`: the puller is done (or gave up); the copy is removed. Unknown ids are fine. */
  async close(from: string, payload: unknown): Promise<{ ok: true }> {
    const id = (payload as { id?: unknown } | undefined)?.id
    const s = typeof id === 'string' ? this.sessions.get(id) : undefined
    if (s && s.peer === from) await this.end(s)
    return { ok: true }
  }

  /** Drops every session and refuses new ones (the node is stopping). */
  async closeAll(): Promise<void> {
    this.closed = true
    await Promise.all([...this.sessions.values()].map((s) => this.end(s)))
  }

  private session(from: string, id: string): Session {
    const s = this.sessions.get(id)
    if (!s || s.peer !== from || s.ended)
      throw new SnapshotSessionError(
        `No snapshot session '${id}' for ${from} here: never opened, closed, or idle for ${this.snapshotIdleMs} ms`,
      )
    return s
  }

  private async read(s: Session, n: number): Promise<Uint8Array> {
    if (n === s.next - 1 && s.last) return s.last
    if (n !== s.next)
      throw new SnapshotSessionError(
        `Cannot read chunk ${n} of snapshot session '${s.id}': the next chunk is ${s.next}`,
      )
    const r = await s.iter.next()
    const data = r.done ? new Uint8Array(0) : r.value
    if (data.byteLength > SNAPSHOT_WIRE_CHUNK_BYTES_MAX)
      throw new RangeError(
        `Cannot send a ${data.byteLength}-byte snapshot chunk: over ${SNAPSHOT_WIRE_CHUNK_BYTES_MAX} bytes (lower snapshotChunkBytesMax)`,
      )
    s.next++
    s.last = data
    return data
  }

  private idleTimer(id: string): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const s = this.sessions.get(id)
      if (!s || s.ended) return
      this.log.debug({ id, peer: s.peer }, 'dropping an idle snapshot session')
      void this.end(s)
    }, this.snapshotIdleMs)
    timer.unref()
    return timer
  }

  /** Ends a session once: waits for its read in progress, removes its copy, then forgets it. */
  private end(s: Session): Promise<void> {
    s.ended ??= (async () => {
      clearTimeout(s.timer)
      try {
        await s.queue
        await s.iter.return?.()
      } finally {
        try {
          await s.snap.discard()
        } finally {
          this.sessions.delete(s.id)
        }
      }
    })()
    return s.ended
  }

  // ---- puller ------------------------------------------------------------------------------------

  /**
   * Installs a copy of the database at `snapshot.meta.index` or later into `store`: asks the
   * marker's maker first, then the other members of the snapshot's membership, round after round
   * (waiting longer each time, up to `retryDelayMsMax`) until one serves it or `signal` aborts.
   * Resolves at once when the store already holds that index.
   */
  async install(
    store: NamespaceStore,
    snapshot: Snapshot,
    options?: { signal?: AbortSignal },
  ): Promise<void> {
    const signal = options?.signal
    const ns = store.config.name
    const index = snapshot.meta.index
    const maker = decodeSnapshotMarker(snapshot.data)?.maker
    const { voters, learners } = snapshot.meta.conf
    const sources = [...new Set([maker ?? '', ...voters, ...learners])].filter(
      (p) => p !== '' && p !== this.self,
    )
    for (let round = 0; ; round++) {
      for (const peer of sources) {
        signal?.throwIfAborted()
        if (store.applied().index >= index) return
        try {
          await this.installFrom(peer, store, index, signal)
          return
        } catch (e) {
          if (signal?.aborted) throw signal.reason
          this.log.warn(
            { ns, index, peer, err: String(e) },
            'cannot install the namespace snapshot from this peer',
          )
        }
      }
      if (sources.length === 0)
        this.log.warn({ ns, index }, 'no replica to fetch the namespace snapshot from; waiting for a new one')
      await delay(Math.min(this.retryDelayMsMax, 100 * 2 ** round), signal)
    }
  }

  private async installFrom(peer: string, store: NamespaceStore, minIndex: number, signal?: AbortSignal) {
    const ns = store.config.name
    const started = performance.now()
    const pull = await fetchNamespaceSnapshot(this.rpc, peer, ns, minIndex, {
      openTimeoutMs: this.openTimeoutMs,
      chunkTimeoutMs: this.chunkTimeoutMs,
      ...(signal ? { signal } : {}),
    })
    try {
      const installed = await installNamespaceSnapshot(
        store,
        pull.meta,
        pull.chunks,
        signal ? { signal } : undefined,
      )
      const ms = performance.now() - started
      this.log.info(
        {
          ns,
          peer,
          index: pull.meta.index,
          bytes: pull.meta.bytes,
          ms: Math.round(ms),
          mbPerS: Math.round(pull.meta.bytes / 1e3 / Math.max(ms, 1)),
          installed,
        },
        'installed namespace snapshot',
      )
    } finally {
      pull.close()
    }
  }
}

/** A snapshot being pulled from a peer. */
export interface SnapshotPull {
  meta: NamespaceSnapshotMeta
  /** The file's bytes in order; iterate once. Ends the session on the source when done. */
  chunks: AsyncIterable<Uint8Array>
  /** Ends the session on the source (safe to call more than once, and after iterating). */
  close(): void
}

/**
 * Opens a snapshot of `namespace` at `minIndex` or later on `peer` and pulls its chunks in order:
 * one request in flight, the next asked as soon as a chunk arrives, so the network overlaps the
 * consumer's write of the chunk before. The bytes are not checked here: `installNamespaceSnapshot`
 * verifies size and SHA-256.
 */
export async function fetchNamespaceSnapshot(
  rpc: Pick<Rpc, 'request'>,
  peer: string,
  namespace: string,
  minIndex: number,
  options: {
    signal?: AbortSignal
    openTimeoutMs?: number
    chunkTimeoutMs?: number
    onProgress?: (p: SnapshotProgress) => void
  } = {},
): Promise<SnapshotPull> {
  const { signal } = options
  signal?.throwIfAborted()
  const opened = (await rpc.request(
    peer,
    'ns.snap.open',
    { ns: namespace, minIndex },
    { timeoutMs: options.openTimeoutMs ?? 60_000, ...(signal ? { signal } : {}) },
  )) as { id?: unknown; meta?: unknown }
  const id = typeof opened?.id === 'string' ? opened.id : ''
  let closed = false
  const close = () => {
    if (closed || id === '') return
    closed = true
    rpc.request(peer, 'ns.snap.close', { id }, { timeoutMs: 5_000 }).catch(() => {})
  }
  const meta = opened?.meta
  if (id === '' || !validMeta(meta, namespace, minIndex)) {
    close()
    throw new SnapshotSourceError(
      `Cannot pull a snapshot of namespace '${namespace}' from ${peer}: malformed answer to ns.snap.open`,
    )
  }
  const bytes = meta.bytes
  const timeoutMs = options.chunkTimeoutMs ?? 10_000
  // Only one request is ever in flight, so asking again is safe: the source serves chunk n whether
  // the request or its answer was lost (it keeps the last chunk for that).
  const ask = async (n: number): Promise<Uint8Array> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await rpc.request(
          peer,
          'ns.snap.chunk',
          { id, n },
          { timeoutMs, ...(signal ? { signal } : {}) },
        )
        return chunkOf(answer, peer, namespace)
      } catch (e) {
        const code = (e as { code?: unknown }).code
        const lost = code === 'ACTORMESH_RPC_TIMEOUT' || code === 'ACTORMESH_PEER_UNREACHABLE'
        if (!lost || attempt >= SNAPSHOT_CHUNK_ATTEMPTS_MAX || signal?.aborted) throw e
      }
    }
  }
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let received = 0
    let n = 0
    let next = ask(n)
    try {
      while (received < bytes) {
        const data = await next
        if (data.byteLength === 0 || received + data.byteLength > bytes)
          throw new SnapshotSourceError(
            `Snapshot of namespace '${namespace}' from ${peer}: chunk ${n} of ${data.byteLength} bytes after ${received} of ${bytes}`,
          )
        received += data.byteLength
        n++
        if (received < bytes) {
          next = ask(n)
          next.catch(() => {}) // awaited on the next round, or dropped when the consumer stops
        }
        options.onProgress?.({ bytes: received, total: bytes })
        yield data
      }
    } finally {
      close()
    }
  }
  return { meta, chunks: { [Symbol.asyncIterator]: chunks }, close }
}

function chunkOf(answer: unknown, peer: string, namespace: string): Uint8Array {
  const data = (answer as { data?: unknown } | undefined)?.data
  if (!(data instanceof Uint8Array))
    throw new SnapshotSourceError(`Snapshot of namespace '${namespace}' from ${peer}: a chunk is not bytes`)
  return data
}

function validMeta(meta: unknown, namespace: string, minIndex: number): meta is NamespaceSnapshotMeta {
  const m = meta as NamespaceSnapshotMeta | null | undefined
  return (
    typeof m === 'object' &&
    m !== null &&
    m.namespace === namespace &&
    Number.isInteger(m.index) &&
    m.index >= minIndex &&
    Number.isInteger(m.term) &&
    Number.isInteger(m.bytes) &&
    m.bytes > 0 &&
    typeof m.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(m.sha256) &&
    typeof m.conf === 'object' &&
    m.conf !== null
  )
}

/** A request as quoted in an error message (bounded: it came from a peer). */
function shown(payload: unknown): string {
  const text = JSON.stringify(payload) ?? String(payload)
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted()
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
