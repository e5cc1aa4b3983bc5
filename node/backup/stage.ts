/**
 * Staging an archived namespace copy on every replica before a rollback's restore entry is
 * proposed (node/backup/rollback.ts). A push over the RPC channel of the peer links, in order:
 *
 *   backup.stage.open   { ns, id, bytes }  → { ok }   the replica opens `<name>.db.stage-<id>.part`
 *   backup.stage.chunk  { id, n, data }    → { ok }   chunk n, in order (the last one may come again)
 *   backup.stage.commit { id, sha256 }     → { ok }   size and SHA-256 checked, fsync, the file checked
 *                                                     as a namespace database, renamed to `.stage-<id>`
 *   backup.stage.abort  { id }             → { ok }   the partial file is removed
 *   backup.stage.discard { ns, id }        → { ok }   a committed copy is removed (the rollback failed)
 *
 * The pusher keeps at most two chunks in flight. A replica serves at most `stagesMax` pushes at
 * once and drops one idle for `stageIdleMs`; committed copies older than `stagedTtlMs` that no
 * restore entry consumed are removed when a new push opens.
 */
import { createHash, type Hash } from 'node:crypto'
import { type FileHandle, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { inspectNamespaceFile, type NamespaceStore } from '../../storage/index.js'
import { RestoreStageError } from './errors.js'
import { STAGE_ID, stagedPath } from './rollback.js'

/** Bytes per staged chunk (well below the links' 16 MiB frame limit with the RPC envelope). */
export const STAGE_CHUNK_BYTES = 1 << 20
/** A chunk larger than this is refused by the replica. */
export const STAGE_CHUNK_BYTES_MAX = 4 << 20

/** Limits of the replica side; each has a default. */
export interface StagerOptions {
  /** Pushes served at once. */
  stagesMax?: number
  /** A push nobody sent a chunk of for this long is dropped with its partial file. */
  stageIdleMs?: number
  /** A committed copy no restore entry consumed is removed after this long. */
  stagedTtlMs?: number
}

interface Session {
  id: string
  peer: string
  store: NamespaceStore
  path: string
  fh: FileHandle
  hash: Hash
  bytes: number
  received: number
  next: number
  timer?: NodeJS.Timeout
  queue: Promise<unknown>
}

/** The replica side of staging: the `backup.stage.*` handlers. */
export class Stager {
  private readonly sessions = new Map<string, Session>()
  private readonly stagesMax: number
  private readonly stageIdleMs: number
  private readonly stagedTtlMs: number

  constructor(
    private readonly stores: (namespace: string) => NamespaceStore | undefined,
    private readonly log: Logger,
    options: StagerOptions = {},
  ) {
    this.stagesMax = options.stagesMax ?? 2
    this.stageIdleMs = options.stageIdleMs ?? 60_000
    this.stagedTtlMs = options.stagedTtlMs ?? 24 * 3_600_000
  }

  /** Dispatches one `backup.stage.*` request (the RPC handlers, and the coordinator's own replica). */
  async handle(method: string, from: string, payload: unknown): Promise<{ ok: true }> {
    const p = (payload ?? {}) as Record<string, unknown>
    if (method === 'backup.stage.open') return this.open(from, p)
    const id = typeof p.id === 'string' ? p.id : ''
    if (method === 'backup.stage.discard') return this.discard(p.ns, id)
    if (method === 'backup.stage.abort') {
      const s = this.sessions.get(id)
      if (s && s.peer === from) await this.end(s, true)
      return { ok: true }
    }
    const s = this.sessions.get(id)
    if (!s || s.peer !== from)
      throw new RestoreStageError(
        `No staging session '${id}' for ${from} here (never opened, or idle too long)`,
      )
    clearTimeout(s.timer)
    s.timer = this.idleTimer(s)
    const run = s.queue.then(() => (method === 'backup.stage.chunk' ? this.chunk(s, p) : this.commit(s, p)))
    s.queue = run.catch(() => {})
    return run
  }

  /** Removes a committed copy that will not be switched to (the rollback failed on another replica). */
  private async discard(ns: unknown, id: string): Promise<{ ok: true }> {
    const store = typeof ns === 'string' ? this.stores(ns) : undefined
    if (store && STAGE_ID.test(id)) await rm(stagedPath(store, id), { force: true })
    return { ok: true }
  }

  /** Drops every push (the node is stopping). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => this.end(s, true)))
  }

  private async open(from: string, p: Record<string, unknown>): Promise<{ ok: true }> {
    const { ns, id, bytes } = p
    if (
      typeof ns !== 'string' ||
      typeof id !== 'string' ||
      !STAGE_ID.test(id) ||
      !Number.isSafeInteger(bytes)
    )
      throw new TypeError(`Cannot stage: malformed request ${JSON.stringify(p).slice(0, 200)}`)
    const store = this.stores(ns)
    if (!store) throw new RestoreStageError(`Cannot stage a copy of namespace '${ns}': no replica of it here`)
    if (this.sessions.has(id) || this.sessions.size >= this.stagesMax)
      throw new RestoreStageError(
        `Cannot stage a copy of namespace '${ns}': ${this.stagesMax} pushes are open here`,
      )
    await this.removeExpired(store)
    const path = `${stagedPath(store, id)}.part`
    const fh = await open(path, 'wx')
    const s: Session = {
      id,
      peer: from,
      store,
      path,
      fh,
      hash: createHash('sha256'),
      bytes: bytes as number,
      received: 0,
      next: 0,
      queue: Promise.resolve(),
    }
    s.timer = this.idleTimer(s)
    this.sessions.set(id, s)
    return { ok: true }
  }

  private async chunk(s: Session, p: Record<string, unknown>): Promise<{ ok: true }> {
    const { n, data } = p
    if (n === s.next - 1) return { ok: true } // a retry of the last chunk, already written
    if (n !== s.next || !(data instanceof Uint8Array) || data.byteLength > STAGE_CHUNK_BYTES_MAX)
      throw new RestoreStageError(
        `Staging session '${s.id}': chunk ${String(n)} is not the next (${s.next}) or malformed`,
      )
    if (s.received + data.byteLength > s.bytes)
      throw new RestoreStageError(`Staging session '${s.id}': more than the announced ${s.bytes} bytes`)
    await s.fh.write(data)
    s.hash.update(data)
    s.received += data.byteLength
    s.next++
    return { ok: true }
  }

  private async commit(s: Session, p: Record<string, unknown>): Promise<{ ok: true }> {
    const sha256 = s.hash.digest('hex')
    if (s.received !== s.bytes || sha256 !== p.sha256) {
      await this.end(s, true)
      throw new RestoreStageError(
        `Staging session '${s.id}': got ${s.received} bytes with SHA-256 ${sha256}, expected ${s.bytes} with ${String(p.sha256)}`,
      )
    }
    await s.fh.sync()
    await s.fh.close()
    try {
      const info = await inspectNamespaceFile(s.path, {
        ...(s.store.config.encryptionKey !== undefined
          ? { encryptionKey: s.store.config.encryptionKey }
          : {}),
      })
      if (info.namespace !== s.store.config.name)
        throw new RestoreStageError(
          `The staged copy holds namespace '${info.namespace}', not '${s.store.config.name}'`,
        )
      await rename(s.path, stagedPath(s.store, s.id))
      await syncDir(dirname(s.path))
    } catch (e) {
      await this.end(s, true)
      throw e
    }
    await this.end(s, false)
    this.log.info({ ns: s.store.config.name, id: s.id, bytes: s.bytes }, 'staged an archived copy')
    return { ok: true }
  }

  private idleTimer(s: Session): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.log.warn({ id: s.id, peer: s.peer }, 'dropping an idle staging session')
      void this.end(s, true)
    }, this.stageIdleMs)
    t.unref()
    return t
  }

  private async end(s: Session, removeFile: boolean): Promise<void> {
    if (this.sessions.get(s.id) !== s) return
    this.sessions.delete(s.id)
    clearTimeout(s.timer)
    await s.fh.close().catch(() => {})
    if (removeFile) await rm(s.path, { force: true })
  }

  /** Removes committed copies of `store`'s namespace older than `stagedTtlMs` (never consumed). */
  private async removeExpired(store: NamespaceStore): Promise<void> {
    const dir = dirname(store.path)
    const prefix = `${basename(store.path)}.stage-`
    const now = Date.now()
    for (const name of await readdir(dir)) {
      if (!name.startsWith(prefix)) continue
      const path = join(dir, name)
      const st = await stat(path).catch(() => undefined)
      if (st && now - st.mtimeMs > this.stagedTtlMs) await rm(path, { force: true })
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Sends one `backup.stage.*` request to one replica (an RPC, or the coordinator's own `Stager`). */
export type StageCall = (method: string, payload: unknown) => Promise<unknown>

/**
 * Pushes the file at `path` (`bytes` long) to one replica as staged copy `id` of `namespace`,
 * two chunks in flight; resolves once the replica committed it. Returns the SHA-256 it sent.
 */
export async function pushStaged(
  call: StageCall,
  namespace: string,
  id: string,
  path: string,
  bytes: number,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<string> {
  options.signal?.throwIfAborted()
  await call('backup.stage.open', { ns: namespace, id, bytes })
  const fh = await open(path, 'r')
  const hash = createHash('sha256')
  try {
    let inflight: Promise<unknown> | undefined
    for (let n = 0, position = 0; position < bytes; n++) {
      options.signal?.throwIfAborted()
      const buf = Buffer.allocUnsafe(Math.min(STAGE_CHUNK_BYTES, bytes - position))
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, position)
      if (bytesRead !== buf.byteLength)
        throw new RangeError(`Cannot stage '${path}': it is shorter than ${bytes} bytes`)
      hash.update(buf)
      position += bytesRead
      const sent = call('backup.stage.chunk', { id, n, data: new Uint8Array(buf) })
      sent.catch(() => {})
      if (inflight) await inflight
      inflight = sent
      options.onBytes?.(position)
    }
    if (inflight) await inflight
    const sha256 = hash.digest('hex')
    await call('backup.stage.commit', { id, sha256 })
    return sha256
  } catch (e) {
    await call('backup.stage.abort', { id }).catch(() => {})
    throw e
  } finally {
    await fh.close()
  }
}
