/**
 * The admin side of snapshots and restores on a node (docs/backup.md): HTTP routes for the CLI and
 * the RPC methods they use between nodes.
 *
 *   GET  /v1/admin/catalog                               the catalog (nodes, namespaces, modules)
 *   POST /v1/admin/snapshot/barrier?namespace=NAME       ReadIndex on the leader → { index, term }
 *   GET  /v1/admin/snapshot/namespace/NAME?minIndex=I    a consistent copy at an applied index ≥ I
 *   PUT  /v1/admin/restore/namespace/NAME                roll the namespace back to the copy sent
 *
 * A copy travels framed as `u32 meta length ‖ meta JSON ‖ database bytes` (both directions), the
 * meta being `{ namespace, index, term, bytes, sha256, modules }`; GET also puts the applied point in
 * `x-actormesh-snapshot-*` headers. Between nodes: `backup.barrier`, `backup.modules`,
 * `backup.switch` and the staging flow `backup.stage.*` (node/backup/stage.ts).
 */
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, open, rm } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { type MultiRaft, Role } from '../../consensus/index.js'
import { createNamespaceSnapshot, type NamespaceStore } from '../../storage/index.js'
import { NamespaceNotFoundError, NotLeaderError } from '../errors.js'
import { httpError } from '../gateway.js'
import type { Membership } from '../membership.js'
import { encodeNamespaceEntry } from '../namespace-group.js'
import { fetchNamespaceSnapshot } from '../namespace-snapshot.js'
import type { Rpc } from '../rpc.js'
import type { SystemService } from '../system.js'
import { ArchiveCorruptError, BackupError, RestoreStageError, RestoreTargetError } from './errors.js'
import { isRestoreCommand, type RestoreCommand } from './rollback.js'
import { pushStaged, type StageCall, Stager } from './stage.js'

/** What a copy of a namespace is, as it travels with its bytes. */
export interface CopyMeta {
  namespace: string
  index: number
  term: number
  bytes: number
  sha256: string
  modules: Array<{ version: number; hash: string }>
}

/** Bytes the meta JSON in front of a copy may take. */
export const COPY_META_BYTES_MAX = 1 << 20

/** Limits and timings of the admin side; each has a default. */
export interface BackupAdminOptions {
  /** Bytes of a namespace copy a rollback accepts. */
  restoreBytesMax?: number
  /** How long routing a barrier or a switch to the namespace leader may take, elections included. */
  leaderTimeoutMs?: number
  /** How long a hosting follower may take to reach the barrier before another replica serves the copy. */
  catchUpWaitMs?: number
}

/** What the admin side uses of the node. */
export interface BackupAdminDeps {
  self: string
  dataDir: string
  driver: MultiRaft
  system: SystemService
  rpc: Rpc
  membership: Membership
  /** The leader of a namespace as this node knows it ('' if none). */
  leaderOf: (namespace: string) => string
  log: Logger
}

/** A copy being served: its meta and its bytes. */
interface Copy {
  meta: CopyMeta
  chunks: AsyncIterable<Uint8Array>
  close(): Promise<void>
}

const SNAPSHOT_ROUTE = /^\/v1\/admin\/snapshot\/namespace\/([^/]+)$/
const RESTORE_ROUTE = /^\/v1\/admin\/restore\/namespace\/([^/]+)$/

/** HTTP status of the backup errors a route can answer. */
const STATUS: Record<string, number> = { ACTORMESH_RESTORE_TARGET: 409, ACTORMESH_ARCHIVE_CORRUPT: 400 }

/** Snapshot and restore admin: routes for the gateway, RPC handlers for the other nodes. */
export class BackupAdmin {
  private readonly stager: Stager
  private readonly restoreBytesMax: number
  private readonly leaderTimeoutMs: number
  private readonly catchUpWaitMs: number

  constructor(
    private readonly deps: BackupAdminDeps,
    options: BackupAdminOptions = {},
  ) {
    this.restoreBytesMax = options.restoreBytesMax ?? 64 * 2 ** 30
    this.leaderTimeoutMs = options.leaderTimeoutMs ?? 15_000
    this.catchUpWaitMs = options.catchUpWaitMs ?? 2_000
    this.stager = new Stager((ns) => deps.system.hosted(ns)?.store, deps.log.child({ component: 'stage' }))
    const { rpc } = deps
    rpc.handle('backup.barrier', async (_from, payload) => this.barrier(payload))
    rpc.handle('backup.modules', async (_from, payload) => this.modulesOf(this.storeOf(payload)))
    rpc.handle('backup.switch', async (_from, payload) => this.switch(payload))
    for (const m of ['open', 'chunk', 'commit', 'abort', 'discard'])
      rpc.handle(`backup.stage.${m}`, (from, payload) =>
        this.stager.handle(`backup.stage.${m}`, from, payload),
      )
  }

  /** Drops staging sessions (the node is stopping). */
  async close(): Promise<void> {
    await this.stager.closeAll()
  }

  /** Serves the admin routes; false when `url` is not one of them (the gateway goes on to its 404). */
  async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname
    if (!path.startsWith('/v1/admin/')) return false
    try {
      if (path === '/v1/admin/catalog' && req.method === 'GET') sendJson(res, 200, this.catalog())
      else if (path === '/v1/admin/snapshot/barrier' && req.method === 'POST') {
        const ns = url.searchParams.get('namespace') ?? ''
        sendJson(res, 200, await this.onLeader(ns, 'backup.barrier', { ns }, () => this.barrier({ ns })))
      } else if (SNAPSHOT_ROUTE.test(path) && req.method === 'GET') {
        const ns = decodeURIComponent(SNAPSHOT_ROUTE.exec(path)![1]!)
        const minIndex = Number(url.searchParams.get('minIndex') ?? '0')
        if (!Number.isSafeInteger(minIndex) || minIndex < 0)
          throw new TypeError(
            `Bad minIndex '${url.searchParams.get('minIndex')}': a whole number is expected`,
          )
        await this.serveCopy(res, ns, minIndex)
      } else if (RESTORE_ROUTE.test(path) && req.method === 'PUT') {
        const ns = decodeURIComponent(RESTORE_ROUTE.exec(path)![1]!)
        sendJson(res, 200, await this.rollback(req, ns))
      } else return false
    } catch (e) {
      if (res.headersSent) res.destroy(e as Error)
      else {
        const code = (e as { code?: unknown }).code
        const mapped =
          e instanceof BackupError && typeof code === 'string' && STATUS[code]
            ? { status: STATUS[code]!, code, headers: {} }
            : httpError(e)
        sendJson(res, mapped.status, { code: mapped.code, message: (e as Error).message }, mapped.headers)
      }
    }
    return true
  }

  private catalog(): unknown {
    const { catalog } = this.deps.system
    return {
      peer: this.deps.self,
      systemLeader: this.deps.system.status().leader,
      appliedIndex: catalog.appliedIndex,
      nodes: [...catalog.nodes.values()],
      namespaces: [...catalog.namespaces.values()],
    }
  }

  private storeOf(payload: unknown): NamespaceStore {
    const ns = (payload as { ns?: unknown } | undefined)?.ns
    const store = typeof ns === 'string' ? this.deps.system.hosted(ns)?.store : undefined
    if (!store) throw new NotLeaderError(String(ns), this.deps.leaderOf(String(ns)))
    return store
  }

  /** Leader side of a barrier: ReadIndex, then the applied index (≥ every acknowledged write). */
  private async barrier(payload: unknown): Promise<{ index: number; term: number }> {
    const store = this.storeOf(payload)
    const ns = store.config.name
    const st = this.deps.driver.status(ns)
    if (st.role !== Role.Leader) throw new NotLeaderError(ns, st.lead)
    await this.deps.driver.readIndex(ns)
    return { index: store.applied().index, term: st.term }
  }

  private async modulesOf(store: NamespaceStore): Promise<{ modules: CopyMeta['modules'] }> {
    return { modules: (await store.modules()).map((m) => ({ version: m.version, hash: m.hash })) }
  }

  /** Leader side of a rollback: proposes the restore entry; resolves once it is applied here. */
  private async switch(payload: unknown): Promise<{ index: number }> {
    const { command } = (payload ?? {}) as { command?: unknown }
    const store = this.storeOf(payload)
    const ns = store.config.name
    if (!isRestoreCommand(command)) throw new TypeError(`Cannot restore namespace '${ns}': malformed command`)
    const st = this.deps.driver.status(ns)
    if (st.role !== Role.Leader) throw new NotLeaderError(ns, st.lead)
    const entry = { epoch: '', seq: 0, base: 0, writes: [], restore: command }
    const index = await this.deps.driver.propose(ns, encodeNamespaceEntry(entry))
    this.deps.log.info(
      { ns, index, id: command.id, from: command.fromIndex },
      'namespace restored from a copy',
    )
    return { index }
  }

  /**
   * Runs `method` on the namespace's leader (here when this node leads), following "not leader"
   * hints and waiting out elections until `leaderTimeoutMs`. Only answers that prove nothing ran
   * are retried.
   */
  private async onLeader<T>(
    ns: string,
    method: string,
    payload: unknown,
    local: () => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + this.leaderTimeoutMs
    let hint = ''
    for (let attempt = 0; ; attempt++) {
      const entry = this.deps.system.catalog.namespaces.get(ns)
      if (!entry) throw new NamespaceNotFoundError(ns)
      const target = hint || this.deps.leaderOf(ns) || entry.voters[attempt % entry.voters.length]!
      try {
        if (target === this.deps.self) return await local()
        return (await this.deps.rpc.request(target, method, payload, {
          timeoutMs: this.leaderTimeoutMs,
        })) as T
      } catch (e) {
        const err = e as { code?: unknown; details?: { leader?: unknown } }
        const retry = err.code === 'ACTORMESH_NOT_LEADER' || err.code === 'ACTORMESH_PROPOSAL_DROPPED'
        if (!retry || Date.now() > deadline) throw e
        const next = typeof err.details?.leader === 'string' ? err.details.leader : ''
        hint = next !== target ? next : ''
        if (!hint) await new Promise((r) => setTimeout(r, 200))
      }
    }
  }

  // ---- serving a copy ----------------------------------------------------------------------------

  private async serveCopy(res: ServerResponse, ns: string, minIndex: number): Promise<void> {
    if (!this.deps.system.catalog.namespaces.has(ns)) throw new NamespaceNotFoundError(ns)
    const abort = new AbortController()
    const onClose = () => abort.abort(new Error('the client went away'))
    res.once('close', onClose)
    const copy = await this.copyOf(ns, minIndex, abort.signal)
    try {
      const meta = Buffer.from(JSON.stringify(copy.meta))
      const head = Buffer.alloc(4)
      head.writeUInt32BE(meta.byteLength)
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(4 + meta.byteLength + copy.meta.bytes),
        'x-actormesh-snapshot-index': String(copy.meta.index),
        'x-actormesh-snapshot-term': String(copy.meta.term),
        'x-actormesh-snapshot-bytes': String(copy.meta.bytes),
        'x-actormesh-snapshot-sha256': copy.meta.sha256,
      })
      res.write(head)
      res.write(meta)
      for await (const chunk of copy.chunks) {
        abort.signal.throwIfAborted()
        if (!res.write(chunk)) await once(res, 'drain', { signal: abort.signal })
      }
      res.end()
    } finally {
      res.off('close', onClose)
      await copy.close()
    }
  }

  /**
   * A consistent copy of `ns` at an applied index ≥ `minIndex`: from this node's replica when it
   * has (or within `catchUpWaitMs` reaches) that index, else pulled from the leader or another
   * replica over the namespace snapshot flow. The module list is read before and after the copy
   * from the same replica; modules only change by deploys and restores, so equal lists are the
   * copy's. A list that changed in between (a deploy ran) makes it try again.
   */
  private async copyOf(ns: string, minIndex: number, signal: AbortSignal): Promise<Copy> {
    for (let attempt = 0; ; attempt++) {
      const copy = await this.openCopy(ns, minIndex, signal)
      if (copy) return copy
      if (attempt >= 3)
        throw new Error(`Cannot copy namespace '${ns}': its modules kept changing during the copy`)
    }
  }

  private async openCopy(ns: string, minIndex: number, signal: AbortSignal): Promise<Copy | undefined> {
    const store = this.deps.system.hosted(ns)?.store
    if (store && (await this.reaches(store, minIndex, signal))) {
      const before = await this.modulesOf(store)
      const snap = await createNamespaceSnapshot(store, { signal })
      const after = await this.modulesOf(store)
      if (JSON.stringify(before) !== JSON.stringify(after)) {
        await snap.discard()
        return undefined
      }
      return {
        meta: { ...snap.meta, modules: after.modules },
        chunks: snap.chunks,
        close: () => snap.discard(),
      }
    }
    const errors: string[] = []
    for (const peer of this.sources(ns)) {
      try {
        const ask = () =>
          this.deps.rpc.request(peer, 'backup.modules', { ns }, { timeoutMs: 10_000, signal }) as Promise<{
            modules: CopyMeta['modules']
          }>
        const before = await ask()
        const pull = await fetchNamespaceSnapshot(this.deps.rpc, peer, ns, minIndex, { signal })
        const after = await ask().catch((e: unknown) => {
          pull.close()
          throw e
        })
        if (JSON.stringify(before.modules) !== JSON.stringify(after.modules)) {
          pull.close()
          return undefined
        }
        const { namespace, index, term, bytes, sha256 } = pull.meta
        const meta = { namespace, index, term, bytes, sha256, modules: after.modules }
        return { meta, chunks: pull.chunks, close: async () => pull.close() }
      } catch (e) {
        signal.throwIfAborted()
        errors.push(`${peer}: ${(e as Error).message}`)
      }
    }
    throw new RestoreStageError(
      `Cannot copy namespace '${ns}' at index ${minIndex} or later: no replica could serve it (${errors.join('; ') || 'none alive'})`,
    )
  }

  /** Waits up to `catchUpWaitMs` for the local replica to apply `index`. */
  private async reaches(store: NamespaceStore, index: number, signal: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + this.catchUpWaitMs
    while (store.applied().index < index) {
      if (Date.now() > deadline) return false
      await new Promise((r) => setTimeout(r, 20))
      signal.throwIfAborted()
    }
    return true
  }

  /** Other replicas of `ns` to copy from, the leader first, live ones only. */
  private sources(ns: string): string[] {
    const entry = this.deps.system.catalog.namespaces.get(ns)
    const all = [this.deps.leaderOf(ns), ...(entry?.voters ?? []), ...(entry?.learners ?? [])]
    return [...new Set(all)].filter(
      (p) => p !== '' && p !== this.deps.self && this.deps.membership.get(p)?.state === 'alive',
    )
  }

  // ---- rollback ----------------------------------------------------------------------------------

  /**
   * Rolls namespace `ns` back to the copy in the request body: stores it here, stages it on every
   * replica, then has the leader propose the restore entry. Nothing switches unless every replica
   * staged it.
   */
  private async rollback(req: IncomingMessage, ns: string): Promise<unknown> {
    const entry = this.deps.system.catalog.namespaces.get(ns)
    if (!entry) throw new NamespaceNotFoundError(ns)
    const body = req[Symbol.asyncIterator]()
    const { meta, rest } = await readCopyMeta(body)
    if (meta.namespace !== ns)
      throw new RestoreTargetError(
        `Cannot restore namespace '${ns}' from a copy of namespace '${meta.namespace}'`,
      )
    if (meta.bytes > this.restoreBytesMax)
      throw new RangeError(
        `Cannot restore a ${meta.bytes}-byte copy: over restoreBytesMax ${this.restoreBytesMax}`,
      )
    const id = randomBytes(8).toString('hex')
    const dir = join(this.deps.dataDir, 'backup')
    await mkdir(dir, { recursive: true })
    const upload = join(dir, `upload-${id}.db`)
    const targets = [...new Set([...entry.voters, ...entry.learners])]
    try {
      await receive(upload, meta, rest, body)
      const started = performance.now()
      const staged = await Promise.allSettled(
        targets.map((peer) => pushStaged(this.stageCall(peer), ns, id, upload, meta.bytes)),
      )
      const failed = targets.filter((_, i) => staged[i]!.status === 'rejected')
      if (failed.length > 0) {
        await Promise.all(
          targets.map((p) => this.stageCall(p)('backup.stage.discard', { ns, id }).catch(() => {})),
        )
        const why = staged.flatMap((s) =>
          s.status === 'rejected' ? [String((s.reason as Error).message)] : [],
        )
        throw new RestoreStageError(
          `Cannot restore namespace '${ns}': staging failed on ${failed.join(', ')} (${why.join('; ')}); nothing was switched`,
        )
      }
      const sha256 = (staged[0] as PromiseFulfilledResult<string>).value
      const command: RestoreCommand = {
        id,
        bytes: meta.bytes,
        sha256,
        fromIndex: meta.index,
        fromTerm: meta.term,
        staged: targets,
      }
      const stageMs = Math.round(performance.now() - started)
      const { index } = await this.onLeader(ns, 'backup.switch', { ns, command }, () =>
        this.switch({ ns, command }),
      )
      const last = meta.modules[meta.modules.length - 1]
      if (last && last.hash !== entry.moduleHash)
        await this.deps.system.recordModule(ns, last.hash).catch((e: unknown) => {
          this.deps.log.warn({ ns, err: String(e) }, 'restored, but the catalog did not record the module')
        })
      return {
        namespace: ns,
        index,
        from: { index: meta.index, term: meta.term },
        replicas: targets,
        stageMs,
      }
    } finally {
      await rm(upload, { force: true })
    }
  }

  private stageCall(peer: string): StageCall {
    if (peer === this.deps.self) return (method, payload) => this.stager.handle(method, peer, payload)
    return (method, payload) =>
      this.deps.rpc.request(peer, method, payload, {
        timeoutMs: method === 'backup.stage.commit' ? 300_000 : 30_000,
      })
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(`${JSON.stringify(body)}\n`)
}

/** Reads the framed meta in front of a copy; `rest` is what followed it in the last chunk read. */
export async function readCopyMeta(body: AsyncIterator<unknown>): Promise<{ meta: CopyMeta; rest: Buffer }> {
  let buf = Buffer.alloc(0)
  const need = async (n: number) => {
    while (buf.byteLength < n) {
      const r = await body.next()
      if (r.done) throw new TypeError('Cannot read the copy: the body ends inside its meta')
      buf = Buffer.concat([buf, r.value as Buffer])
    }
  }
  await need(4)
  const length = buf.readUInt32BE(0)
  if (length > COPY_META_BYTES_MAX)
    throw new RangeError(`Cannot read the copy: its meta claims ${length} bytes`)
  await need(4 + length)
  const meta = JSON.parse(buf.subarray(4, 4 + length).toString('utf8')) as CopyMeta
  const ok =
    typeof meta?.namespace === 'string' &&
    Number.isSafeInteger(meta.index) &&
    Number.isSafeInteger(meta.term) &&
    Number.isSafeInteger(meta.bytes) &&
    meta.bytes > 0 &&
    typeof meta.sha256 === 'string' &&
    Array.isArray(meta.modules)
  if (!ok) throw new TypeError('Cannot read the copy: its meta is malformed')
  return { meta, rest: buf.subarray(4 + length) }
}

/** Writes the rest of a copy to `path`, checking its size and SHA-256 against `meta`. */
async function receive(
  path: string,
  meta: CopyMeta,
  first: Buffer,
  body: AsyncIterator<unknown>,
): Promise<void> {
  const fh = await open(path, 'wx')
  const hash = createHash('sha256')
  let bytes = 0
  try {
    for (let chunk: Buffer | undefined = first; chunk; ) {
      bytes += chunk.byteLength
      if (bytes > meta.bytes)
        throw new RangeError(`Cannot restore: the copy is longer than its ${meta.bytes} bytes`)
      hash.update(chunk)
      await fh.write(chunk)
      const r = await body.next()
      chunk = r.done ? undefined : (r.value as Buffer)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  const sha256 = hash.digest('hex')
  if (bytes !== meta.bytes || sha256 !== meta.sha256)
    throw new ArchiveCorruptError(
      `Cannot restore: received ${bytes} bytes with SHA-256 ${sha256}, the copy says ${meta.bytes} with ${meta.sha256}`,
    )
}
