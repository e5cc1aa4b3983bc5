/**
 * One namespace's state in its own LibSQL database (`<data>/ns/<name>.db`): actor key/values,
 * deployed modules, and the applied index/term/membership, all written in one transaction per
 * applied batch so that applying after a crash is exactly-once.
 */
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { assert, type ConfState, cloneConf, type Logger } from '../consensus/index.js'
import type { Db, Row } from './db.js'
import { StorageClosedError, StorageCorruptionError } from './errors.js'
import {
  checkWrite,
  confText,
  crcKv,
  crcMeta,
  crcModule,
  defaultNamespaceLimits,
  NAMESPACE_SCHEMA,
  type NamespaceLimits,
  validateNamespaceName,
} from './namespace-schema.js'
import { planWrites, SizeCache } from './namespace-writes.js'
import {
  blob,
  checkpoint,
  type DbConfig,
  ensureSchema,
  guard,
  openDb,
  SerialLock,
  syncWal,
  text,
} from './sqlite.js'
import type { StatePage, StateReader, StateWrite } from './state-store.js'

/** Options of `openNamespaceStore`. */
export interface NamespaceStoreConfig {
  /** The node's data directory; the database is `<dataDir>/ns/<name>.db`. */
  dataDir: string
  /** Validated with `validateNamespaceName`. */
  name: string
  encryptionKey?: string
  limits?: Partial<NamespaceLimits>
  /** Bytes per chunk of a snapshot stream. */
  snapshotChunkBytesMax?: number
  verifyOnOpen?: boolean
  /**
   * `normal` (default): `apply` commits without fsync — the batches are entries of the group's
   * Raft log, which is durable and replays what power loss takes (`apply` skips what it holds);
   * call `sync` before the log may forget them (compaction). `full`: every apply is fsynced.
   */
  synchronous?: 'full' | 'normal'
  /**
   * Keys, and separately actors, whose byte sizes `apply` keeps in memory so that it need not look
   * them up (default 4,096 each, ~0.5 MB; 0 turns the cache off).
   */
  sizeCacheEntriesMax?: number
  /**
   * With `synchronous: 'normal'`, applied batches wait in one open write transaction for up to
   * this long before it commits (default 200; 0 commits every apply). A commit is a fixed cost of
   * about half of a small apply; the Raft log holds every batch durably meanwhile, so a crash only
   * makes a restart replay them. `sync`, `close` and snapshots commit first.
   */
  applyCommitMs?: number
  logger?: Logger
}

/** A deployed module version, as stored. */
export interface ModuleRecord {
  version: number
  /** Hex SHA-256 of `bytes`, as the actors runtime computes it. */
  hash: string
  bytes: Uint8Array
  /** JSON text chosen by the deployer (signature, granted imports, ...). */
  metadata: string
}

/** One applied batch: everything that committed entries up to `index` change. */
export interface AppliedBatch {
  index: number
  term: number
  writes: StateWrite[]
  /** The membership after this batch, when it changed. */
  conf?: ConfState
  modules?: ModuleRecord[]
}

/** Where the namespace's state machine stands. */
export interface AppliedPoint {
  index: number
  term: number
  conf: ConfState
}

/** Opens (creating if needed) a namespace database. */
export async function openNamespaceStore(
  config: NamespaceStoreConfig,
  options?: { signal?: AbortSignal },
): Promise<NamespaceStore> {
  options?.signal?.throwIfAborted()
  validateNamespaceName(config.name)
  const dir = join(config.dataDir, 'ns')
  await mkdir(dir, { recursive: true })
  const store = new NamespaceStore(config, join(dir, `${config.name}.db`))
  await removeStaleTemps(dir, `${config.name}.db.`)
  await store.reopen()
  return store
}

/**
 * Removes snapshot temp files a crash left behind (`<name>.db.snap-*.tmp`, `.install-*.tmp` and
 * their `-wal`/`-shm`): nothing else owns them while the namespace is being opened.
 */
async function removeStaleTemps(dir: string, prefix: string): Promise<void> {
  const stale = /^(snap|install)-[0-9a-f]+\.tmp(-wal|-shm|-journal)?$/
  for (const name of await readdir(dir)) {
    if (name.startsWith(prefix) && stale.test(name.slice(prefix.length)))
      await rm(join(dir, name), { force: true })
  }
}

/** Default `applyCommitMs`. */
const APPLY_COMMIT_MS = 200
/** Default `sizeCacheEntriesMax`. */
const SIZE_CACHE_ENTRIES_MAX = 4096

/** A namespace database. Create it with `openNamespaceStore`. */
export class NamespaceStore implements StateReader {
  /** The limits in force (defaults filled in). */
  readonly limits: NamespaceLimits
  /** The database file. */
  readonly path: string
  /** Serialises writers: apply, snapshot creation and installation. */
  readonly lock = new SerialLock()
  private client: Db | undefined
  private swapping: { done: Promise<void>; resolve: () => void } | undefined
  private point: AppliedPoint = { index: 0, term: 0, conf: { voters: [], learners: [] } }
  private readonly walSync: { dirSynced?: boolean } = {}
  /** Sizes as the open file holds them; cleared whenever the file is closed or replaced. */
  private readonly sizes: SizeCache
  private readonly applyCommitMs: number
  /** Applied batches wait in the open write transaction (`commitTimer` will commit them). */
  private pending = false
  private commitTimer: NodeJS.Timeout | undefined
  /** A commit of pending batches failed: the file lost batches reported applied; no more writes. */
  private broken: Error | undefined

  /** @internal use `openNamespaceStore`. */
  constructor(
    readonly config: NamespaceStoreConfig,
    path: string,
  ) {
    this.path = path
    this.limits = { ...defaultNamespaceLimits, ...config.limits }
    this.sizes = new SizeCache(config.sizeCacheEntriesMax ?? SIZE_CACHE_ENTRIES_MAX)
    this.applyCommitMs = config.synchronous === 'full' ? 0 : (config.applyCommitMs ?? APPLY_COMMIT_MS)
  }

  /** The database's open settings (for snapshot files, which use the same key). */
  get dbConfig(): DbConfig {
    return {
      path: this.path,
      encryptionKey: this.config.encryptionKey,
      verifyOnOpen: this.config.verifyOnOpen,
    }
  }

  /** The applied index, term and membership (kept in memory, written with every batch). */
  applied(): AppliedPoint {
    return { index: this.point.index, term: this.point.term, conf: cloneConf(this.point.conf) }
  }

  /** @internal (Re)opens the file and loads the applied point; used on open and after install. */
  async reopen(): Promise<void> {
    assert(!this.pending, 'reopen with applied batches not committed')
    this.sizes.clear()
    this.broken = undefined
    const db = this.dbConfig
    const client = await openDb({ ...db, synchronous: this.config.synchronous ?? 'normal' })
    try {
      await ensureSchema(db, client, NAMESPACE_SCHEMA)
      const rs = await guard(db, () =>
        client.execute(
          'SELECT CAST(namespace AS BLOB), applied_index, applied_term, CAST(conf AS BLOB), crc FROM ns_meta WHERE id = 1',
        ),
      )
      const row = rs.rows[0]
      if (!row) {
        const conf = confText(this.point.conf)
        await guard(db, () =>
          client.execute({
            sql: 'INSERT INTO ns_meta (id, namespace, applied_index, applied_term, conf, bytes, crc) VALUES (1, ?, 0, 0, ?, 0, ?)',
            args: [this.config.name, conf, crcMeta(this.config.name, 0, 0, conf)],
          }),
        )
        this.point = { index: 0, term: 0, conf: { voters: [], learners: [] } }
      } else {
        this.point = this.readMeta(row)
      }
    } catch (error) {
      client.close()
      throw error
    }
    this.client = client
  }

  private readMeta(row: Row): AppliedPoint {
    const [name, index, term, conf, crc] = [
      this.text(row[0]),
      Number(row[1]),
      Number(row[2]),
      this.text(row[3]),
      row[4],
    ]
    if (name !== this.config.name || crcMeta(name, index, term, conf) !== Number(crc)) {
      throw new StorageCorruptionError(this.path, 'the applied point fails its checksum')
    }
    return { index, term, conf: JSON.parse(conf) as ConfState }
  }

  /** @internal The open client; throws `StorageClosedError` when closed. */
  db(): Db {
    if (!this.client) throw new StorageClosedError(`namespace '${this.config.name}'`)
    return this.client
  }

  /**
   * @internal Commits what is pending and closes the client so the file can be replaced; reads
   * wait until `endSwap`. Call under the writer lock, then `reopen`, then `endSwap` (also when
   * reopening fails).
   */
  async beginSwap(): Promise<void> {
    await this.commitPending()
    let resolve = () => {}
    const done = new Promise<void>((r) => {
      resolve = r
    })
    this.swapping = { done, resolve }
    this.sizes.clear()
    this.client?.close()
    this.client = undefined
  }

  /** @internal Lets reads go on after a file swap. */
  endSwap(): void {
    this.swapping?.resolve()
    this.swapping = undefined
  }

  /** The client for a read: waits while a snapshot is being swapped in. */
  private async reader(): Promise<Db> {
    while (this.swapping) await this.swapping.done
    return this.db()
  }

  /** Checks writes against the limits without writing (the leader calls it before proposing). */
  checkWrites(writes: StateWrite[]): void {
    for (const w of writes) checkWrite(w, this.limits)
  }

  /**
   * Applies one batch of committed writes at `index`, with the applied point, in one transaction.
   * A batch at or below the applied index is skipped (returns false): that is what makes replay
   * after a crash exactly-once. A batch that breaks a limit is refused whole, nothing written.
   */
  async apply(batch: AppliedBatch, options?: { signal?: AbortSignal }): Promise<boolean> {
    options?.signal?.throwIfAborted()
    if (!Number.isInteger(batch.index) || !Number.isInteger(batch.term) || batch.index < 0) {
      throw new RangeError(`Cannot apply batch at index '${batch.index}' term '${batch.term}'`)
    }
    this.checkWrites(batch.writes)
    for (const m of batch.modules ?? []) {
      if (!Number.isInteger(m.version) || typeof m.hash !== 'string' || !(m.bytes instanceof Uint8Array)) {
        throw new TypeError(`Cannot store module version '${m.version}': version, hash or bytes is malformed`)
      }
    }
    return this.lock.run(async () => {
      if (this.broken) throw this.broken
      if (batch.index <= this.point.index) return false
      const conf = batch.conf ? cloneConf(batch.conf) : this.point.conf
      const { stmts, bytesDelta, after } = await guard(this.dbConfig, () =>
        planWrites(this.db(), batch.writes, this.limits, this.sizes),
      )
      const ct = confText(conf)
      stmts.push({
        sql: 'UPDATE ns_meta SET applied_index = ?, applied_term = ?, conf = ?, crc = ?, bytes = bytes + ? WHERE id = 1',
        args: [
          batch.index,
          batch.term,
          ct,
          crcMeta(this.config.name, batch.index, batch.term, ct),
          bytesDelta,
        ],
      })
      for (const m of batch.modules ?? []) {
        stmts.push({
          sql: 'INSERT OR REPLACE INTO modules (namespace, version, hash, bytes, metadata, crc) VALUES (?, ?, ?, ?, ?, ?)',
          args: [
            this.config.name,
            m.version,
            m.hash,
            m.bytes,
            m.metadata,
            crcModule(this.config.name, m.version, m.hash, m.bytes, m.metadata),
          ],
        })
      }
      const db = this.db()
      try {
        if (this.applyCommitMs > 0) await guard(this.dbConfig, () => db.inOpenTransaction(stmts))
        else await guard(this.dbConfig, () => db.batch(stmts, 'write'))
      } catch (e) {
        // Rolled back, or not: SQLite may fail a COMMIT after writing. Sizes are looked up again.
        this.sizes.clear()
        // SQLite ended the open transaction itself: batches reported applied are gone from it.
        if (this.pending && !db.inTransaction) this.fail(e)
        throw e
      }
      if (after) this.sizes.remember(after)
      this.point = { index: batch.index, term: batch.term, conf }
      if (this.applyCommitMs > 0) this.commitSoon()
      return true
    })
  }

  async loadActor(
    actor: string,
    options?: { signal?: AbortSignal },
  ): Promise<Array<[key: string, value: Uint8Array]>> {
    options?.signal?.throwIfAborted()
    const rs = await guard(this.dbConfig, async () =>
      (await this.reader()).execute({
        sql: 'SELECT CAST(key AS BLOB), value, crc FROM kv WHERE actor = ? ORDER BY key',
        args: [actor],
      }),
    )
    return rs.rows.map((r) => this.verified(actor, r))
  }

  async get(actor: string, key: string, options?: { signal?: AbortSignal }): Promise<Uint8Array | undefined> {
    options?.signal?.throwIfAborted()
    const rs = await guard(this.dbConfig, async () =>
      (await this.reader()).execute({
        sql: 'SELECT CAST(key AS BLOB), value, crc FROM kv WHERE actor = ? AND key = ?',
        args: [actor, key],
      }),
    )
    const row = rs.rows[0]
    return row ? this.verified(actor, row)[1] : undefined
  }

  /**
   * Every actor that stores `key`, with the value (the node loads its alarm index with this on
   * hosting a namespace: one pass over the table, no per-actor reads).
   */
  async actorsWithKey(
    key: string,
    options?: { signal?: AbortSignal },
  ): Promise<Array<[actor: string, value: Uint8Array]>> {
    options?.signal?.throwIfAborted()
    const rs = await guard(this.dbConfig, async () =>
      (await this.reader()).execute({
        sql: 'SELECT CAST(actor AS BLOB), CAST(key AS BLOB), value, crc FROM kv WHERE key = ?',
        args: [key],
      }),
    )
    return rs.rows.map((r) => {
      const actor = this.text(r[0])
      return [actor, this.verified(actor, [r[1], r[2], r[3]] as unknown as Row)[1]]
    })
  }

  async list(
    actor: string,
    prefix: string,
    page: { limit: number; after?: string },
    options?: { signal?: AbortSignal },
  ): Promise<StatePage> {
    options?.signal?.throwIfAborted()
    if (!Number.isInteger(page.limit) || page.limit < 1 || page.limit > this.limits.listLimitMax) {
      throw new RangeError(
        `Cannot list ${page.limit} keys: limit is 1 .. listLimitMax ${this.limits.listLimitMax}`,
      )
    }
    const upper = prefixEnd(prefix)
    const after = page.after
    const sql = `SELECT CAST(key AS BLOB), value, crc FROM kv WHERE actor = ? AND key >= ? ${after === undefined ? '' : 'AND key > ?'}
      ${upper === undefined ? '' : 'AND key < ?'} ORDER BY key LIMIT ?`
    const args: Array<string | number> = [
      actor,
      prefix,
      ...(after === undefined ? [] : [after]),
      ...(upper === undefined ? [] : [upper]),
    ]
    args.push(page.limit + 1)
    const rs = await guard(this.dbConfig, async () => (await this.reader()).execute({ sql, args }))
    const entries = rs.rows.slice(0, page.limit).map((r) => this.verified(actor, r))
    return rs.rows.length > page.limit ? { entries, cursor: entries[entries.length - 1]![0] } : { entries }
  }

  async actorBytes(actor: string, options?: { signal?: AbortSignal }): Promise<number> {
    options?.signal?.throwIfAborted()
    const rs = await guard(this.dbConfig, async () =>
      (await this.reader()).execute({ sql: 'SELECT bytes FROM actor_usage WHERE actor = ?', args: [actor] }),
    )
    return Number(rs.rows[0]?.[0] ?? 0)
  }

  /** Bytes of keys and values of every actor of the namespace (kept incrementally). */
  async namespaceBytes(options?: { signal?: AbortSignal }): Promise<number> {
    options?.signal?.throwIfAborted()
    const rs = await guard(this.dbConfig, async () =>
      (await this.reader()).execute('SELECT bytes FROM ns_meta WHERE id = 1'),
    )
    return Number(rs.rows[0]?.[0] ?? 0)
  }

  /** Deployed modules, oldest version first. */
  async modules(options?: { signal?: AbortSignal }): Promise<ModuleRecord[]> {
    options?.signal?.throwIfAborted()
    const rs = await guard(this.dbConfig, async () =>
      (await this.reader()).execute(
        'SELECT version, CAST(hash AS BLOB), bytes, CAST(metadata AS BLOB), crc FROM modules ORDER BY version',
      ),
    )
    return rs.rows.map((r) => {
      const m: ModuleRecord = {
        version: Number(r[0]),
        hash: this.text(r[1]),
        bytes: blob(r[2], this.path),
        metadata: this.text(r[3]),
      }
      if (crcModule(this.config.name, m.version, m.hash, m.bytes, m.metadata) !== Number(r[4])) {
        throw new StorageCorruptionError(this.path, `module version ${m.version} fails its checksum`)
      }
      return m
    })
  }

  /**
   * @internal Commits the batches applied since the last commit (nothing when none wait). Call
   * under the writer lock; `sync`, `close` and snapshot creation do.
   */
  async commitPending(): Promise<void> {
    clearTimeout(this.commitTimer)
    this.commitTimer = undefined
    const pending = this.pending
    this.pending = false
    // Also a transaction with nothing pending: a refused first batch leaves it open and empty.
    const db = this.client
    if (!db?.inTransaction) return
    try {
      await guard(this.dbConfig, async () => db.commitOpen())
    } catch (e) {
      if (pending) this.fail(e)
      throw e
    }
  }

  /** Commits the open transaction `applyCommitMs` after the first batch it holds. */
  private commitSoon(): void {
    if (this.pending) return
    this.pending = true
    this.commitTimer = setTimeout(() => {
      this.lock
        .run(() => this.commitPending())
        .catch((e: unknown) => this.config.logger?.error({ err: String(e) }, 'namespace commit failed'))
    }, this.applyCommitMs)
    this.commitTimer.unref()
  }

  /** No more writes: the file lost batches this store reported applied (a restart replays them). */
  private fail(e: unknown): void {
    this.broken = e instanceof Error ? e : new Error(String(e))
    this.pending = false
    this.sizes.clear()
    this.config.logger?.error({ err: String(e) }, 'namespace store lost uncommitted batches; writes refused')
  }

  /**
   * Makes every applied batch durable against power loss (with `synchronous: 'normal'`): the
   * fsync runs on libuv's thread pool. Returns the applied point it covers.
   */
  async sync(): Promise<AppliedPoint> {
    return this.lock.run(async () => {
      await this.commitPending()
      const point = this.applied()
      if (this.client && this.config.synchronous !== 'full') await syncWal(this.path, this.walSync)
      return point
    })
  }

  /**
   * Commits, checkpoints and closes the database; reads and writes after this throw
   * `StorageClosedError`.
   */
  async close(): Promise<void> {
    await this.lock.run(async () => {
      try {
        await this.commitPending()
        if (this.client) await checkpoint(this.dbConfig, this.client)
      } finally {
        this.sizes.clear()
        this.client?.close()
        this.client = undefined
      }
    })
  }

  private text(value: unknown): string {
    return text(value, this.path)
  }

  private verified(actor: string, row: Row): [string, Uint8Array] {
    const key = this.text(row[0])
    const value = blob(row[1], this.path)
    if (crcKv(actor, key, value) !== Number(row[2])) {
      throw new StorageCorruptionError(this.path, `key '${key}' of actor '${actor}' fails its checksum`)
    }
    return [key, value]
  }
}

/**
 * The smallest string above every string that starts with `prefix` (in UTF-8 byte order, which
 * is code point order and SQLite's BINARY collation): the last code point plus one. Undefined when
 * there is none (empty prefix, or only U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = [...prefix].map((c) => c.codePointAt(0)!)
  while (cps.length > 0) {
    let last = cps.pop()! + 1
    if (last === 0xd800) last = 0xe000
    if (last <= 0x10ffff) return String.fromCodePoint(...cps, last)
  }
  return undefined
}
