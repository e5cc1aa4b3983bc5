/**
 * What every LibSQL database of the node shares: how it is opened (WAL, `synchronous=FULL` or
 * `NORMAL` plus an fsync off the event loop, one connection, optional encryption key), how
 * SQLite's failures become typed errors, and a lock that keeps one writer at a time.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { dirname } from 'node:path'
import { type Db, openConnection } from './db.js'
import { StorageCorruptionError, StorageKeyError } from './errors.js'

/** How a database file is opened. */
export interface DbConfig {
  /** Absolute or relative file path (no `?` or `#`: it becomes a `file:` URL). */
  path: string
  /** LibSQL's encryption-at-rest key; the same key must be given every time the file is opened. */
  encryptionKey?: string
  /** Run `PRAGMA quick_check` when opening, so a damaged file is refused up front (default true). */
  verifyOnOpen?: boolean
  /**
   * `full` (default): every commit fsyncs the WAL inside SQLite, blocking the event loop for the
   * whole fsync (3.4 ms per commit measured here). `normal`: commits only write the WAL (0.3 ms);
   * a commit survives a process crash at once, and power loss after `syncWal` — which fsyncs on
   * libuv's thread pool, so the event loop keeps serving while the disk works.
   */
  synchronous?: 'full' | 'normal'
}

const SQLITE_MAGIC = 'SQLite format 3\0'

/** Whether a file starts with the plain SQLite header (an encrypted file does not). */
function hasPlainHeader(path: string): boolean {
  try {
    const fd = openSync(path, 'r')
    try {
      const buf = Buffer.alloc(16)
      const n = readSync(fd, buf, 0, 16, 0)
      return n === 16 && buf.toString('latin1') === SQLITE_MAGIC
    } finally {
      closeSync(fd)
    }
  } catch {
    return false
  }
}

/**
 * Turns SQLite's corruption and "not a database" failures into `StorageCorruptionError` or
 * `StorageKeyError`; anything else is returned unchanged. A file that does not start with the
 * SQLite header cannot be told apart from an encrypted one, so without a key it is a key error.
 */
export function translateDbError(error: unknown, config: DbConfig): unknown {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return error
  const message = error instanceof Error ? error.message : String(error)
  if (code === 'SQLITE_NOTADB') {
    if (config.encryptionKey !== undefined) {
      return new StorageKeyError(config.path, 'the encryption key is wrong, or the file is damaged')
    }
    if (!hasPlainHeader(config.path)) {
      return new StorageKeyError(
        config.path,
        'the file is encrypted (no encryption key was given) or damaged',
      )
    }
    return new StorageCorruptionError(config.path, `SQLite reports ${message}`)
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_IOERR_SHORT_READ') {
    return new StorageCorruptionError(config.path, `SQLite reports ${message}`)
  }
  return error
}

/** Runs `fn`, translating SQLite failures (see `translateDbError`). */
export async function guard<T>(config: DbConfig, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    throw translateDbError(error, config)
  }
}

/**
 * Opens a database file for ActorMesh: one connection (so per-connection pragmas hold for every
 * statement), WAL journal, `synchronous` as `config.synchronous` says (in WAL mode, FULL fsyncs
 * the WAL on every commit, so a transaction that returned is durable; NORMAL only fsyncs at
 * checkpoints, and `syncWal` makes earlier commits durable), and a forced read of the schema so
 * that a wrong key or a damaged header fails here rather than on first use.
 */
export async function openDb(config: DbConfig): Promise<Db> {
  if (/[?#]/.test(config.path)) {
    throw new RangeError(`Cannot open database '${config.path}': path contains '?' or '#'`)
  }
  let client: Db | undefined
  try {
    client = openConnection(config.path, config.encryptionKey)
    await client.execute('PRAGMA journal_mode=WAL')
    await client.execute(`PRAGMA synchronous=${config.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`)
    await client.execute('SELECT count(*) FROM sqlite_schema')
    if (config.verifyOnOpen !== false) {
      // integrity_check, not quick_check: only the full check verifies key order across pages,
      // and a flipped byte in an interior page can otherwise hide whole ranges of rows.
      const check = await client.execute('PRAGMA integrity_check')
      const first = check.rows[0]?.[0]
      if (check.rows.length !== 1 || first !== 'ok') {
        throw new StorageCorruptionError(config.path, `quick_check reports ${String(first)}`)
      }
    }
    return client
  } catch (error) {
    client?.close()
    throw translateDbError(error, config)
  }
}

/**
 * Copies the WAL into the database file and empties it, so a closed database is one
 * self-contained file (the bundled libsql does not checkpoint when its last connection closes).
 */
export async function checkpoint(config: DbConfig, client: Db): Promise<void> {
  await guard(config, () => client.execute('PRAGMA wal_checkpoint(TRUNCATE)'))
}

/** Runs async jobs one at a time, in call order: the single writer of a database. */
export class SerialLock {
  private tail: Promise<unknown> = Promise.resolve()

  /** Runs `job` after every job queued before it; its outcome does not affect later jobs. */
  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job, job)
    this.tail = result.catch(() => undefined)
    return result
  }
}

/**
 * Bytes of a BLOB column as a plain `Uint8Array` (the engine returns a `Buffer`; this is a view of
 * the same bytes). Any other type means a damaged record header changed the column's type.
 */
export function blob(value: unknown, path: string): Uint8Array {
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  throw new StorageCorruptionError(path, `a BLOB column holds a ${value === null ? 'null' : typeof value}`)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A TEXT column read as `CAST(column AS BLOB)` and decoded here: the bundled libsql aborts the
 * process on a TEXT value that is not valid UTF-8, so damaged text must never reach it as TEXT.
 */
export function text(value: unknown, path: string): string {
  try {
    return utf8.decode(blob(value, path))
  } catch {
    throw new StorageCorruptionError(path, 'a TEXT column is not valid UTF-8')
  }
}

const expectedSchemas = new Map<string, string>()

/** The schema rows that `statements` create, from a scratch in-memory database (cached). */
async function expectedSchema(statements: string[]): Promise<string> {
  const id = statements.join(';')
  let schema = expectedSchemas.get(id)
  if (schema === undefined) {
    const scratch = openConnection(':memory:')
    try {
      await scratch.batch(statements, 'write')
      schema = await schemaText(scratch)
    } finally {
      scratch.close()
    }
    expectedSchemas.set(id, schema)
  }
  return schema
}

async function schemaText(client: Db): Promise<string> {
  const rs = await client.execute(
    'SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(tbl_name AS BLOB), CAST(sql AS BLOB) FROM sqlite_schema ORDER BY 1, 2',
  )
  return JSON.stringify(
    rs.rows.map((r) =>
      [0, 1, 2, 3].map((i) => (r[i] === null ? null : Buffer.from(blob(r[i], '')).toString('hex'))),
    ),
  )
}

/**
 * Creates the schema if the database is new, and otherwise checks that the stored schema is
 * exactly the one `statements` create: a flipped byte in it is corruption, not a missing column.
 */
export async function ensureSchema(config: DbConfig, client: Db, statements: string[]): Promise<void> {
  const count = await guard(config, () => client.execute('SELECT count(*) FROM sqlite_schema'))
  if (Number(count.rows[0]?.[0]) === 0) {
    await guard(config, () => client.batch(statements, 'write'))
    return
  }
  const [want, got] = await Promise.all([expectedSchema(statements), guard(config, () => schemaText(client))])
  if (want !== got) throw new StorageCorruptionError(config.path, 'the schema is not the one ActorMesh wrote')
}

/**
 * Makes every commit of a `synchronous: 'normal'` database durable against power loss: fsyncs its
 * WAL file (and, the first time, the directory that holds the WAL's name) on libuv's thread pool.
 * In WAL mode with NORMAL, SQLite appends commits to the WAL without fsync and fsyncs the WAL
 * itself before every checkpoint copies it into the database, so after this returns no commit made
 * before the call can be lost. Linux fsync covers the file's pages whichever descriptor wrote them.
 */
export async function syncWal(path: string, state: { dirSynced?: boolean } = {}): Promise<void> {
  const wal = await openWal(path)
  if (!wal) return
  try {
    await wal.datasync()
  } finally {
    await wal.close()
  }
  if (!state.dirSynced) await syncDirOf(path)
  state.dirSynced = true
}

/** The WAL of the database at `path`, open for fsync; undefined when there is none. */
async function openWal(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(`${path}-wal`, 'r')
  } catch (e) {
    // No WAL: SQLite checkpointed it into the database (fsyncing both) and removed it.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

async function syncDirOf(path: string): Promise<void> {
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/**
 * `syncWal` for a database that stays open in one connection for the life of this object (the
 * Raft log, synced on every turn that must sync): the WAL's descriptor is kept between syncs,
 * which saves an open and a close on the thread pool per sync. SQLite removes the WAL file only
 * when the last connection closes, and a TRUNCATE checkpoint only shortens it, so the kept
 * descriptor names the live WAL until `close`. Call `close` before closing the connection.
 */
export class WalSyncer {
  private wal: FileHandle | undefined
  private dirSynced = false

  constructor(private readonly path: string) {}

  async sync(): Promise<void> {
    this.wal ??= await openWal(this.path)
    if (!this.wal) return
    await this.wal.datasync()
    if (!this.dirSynced) await syncDirOf(this.path)
    this.dirSynced = true
  }

  async close(): Promise<void> {
    const wal = this.wal
    this.wal = undefined
    await wal?.close()
  }
}
