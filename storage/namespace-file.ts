/**
 * Namespace database files that are not (yet) a live store: a copy restored from a backup archive
 * or staged for a rollback. `inspectNamespaceFile` verifies one and says what it holds;
 * `rebaseNamespaceFile` moves its applied point to a new log position (the index of the entry
 * that installs it) with a few writes, in one transaction; `swapNamespaceFile` replaces a live
 * store's file with it atomically. The live store is never touched until the swap's rename.
 */
import { open, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { assert, type ConfState } from '../consensus/index.js'
import type { Db } from './db.js'
import { StorageCorruptionError } from './errors.js'
import {
  confText,
  crcMeta,
  crcModule,
  defaultNamespaceLimits,
  NAMESPACE_SCHEMA,
  validateNamespaceName,
} from './namespace-schema.js'
import type { NamespaceStore } from './namespace-store.js'
import { planWrites } from './namespace-writes.js'
import { blob, checkpoint, type DbConfig, ensureSchema, guard, openDb, text } from './sqlite.js'
import type { StateWrite } from './state-store.js'

/** What a namespace database file holds at its applied point. */
export interface NamespaceFileInfo {
  namespace: string
  index: number
  term: number
  conf: ConfState
  /** Bytes of keys and values of every actor (the namespace's byte counter). */
  stateBytes: number
  /** Deployed module versions, oldest first (hashes only). */
  modules: Array<{ version: number; hash: string }>
}

/** Options for reading a file that is not a live store. */
export interface NamespaceFileOptions {
  encryptionKey?: string
  /** Run SQLite's `integrity_check` first (default true). */
  verify?: boolean
  signal?: AbortSignal
}

async function withFile<T>(
  path: string,
  options: NamespaceFileOptions | undefined,
  fn: (client: Db, db: DbConfig) => Promise<T>,
): Promise<T> {
  options?.signal?.throwIfAborted()
  const db: DbConfig = {
    path,
    ...(options?.encryptionKey !== undefined ? { encryptionKey: options.encryptionKey } : {}),
    verifyOnOpen: options?.verify !== false,
  }
  const client = await openDb(db)
  try {
    const count = await guard(db, () => client.execute('SELECT count(*) FROM sqlite_schema'))
    if (Number(count.rows[0]?.[0]) === 0) throw new StorageCorruptionError(path, 'the file holds no tables')
    // Compares the stored schema with ActorMesh's (creates nothing: the schema is not empty).
    await ensureSchema(db, client, NAMESPACE_SCHEMA)
    const out = await fn(client, db)
    // Opening switched the file to WAL: fold the WAL back in so the file stands alone.
    await checkpoint(db, client)
    return out
  } finally {
    client.close()
    await Promise.all(['-wal', '-shm'].map((s) => rm(`${path}${s}`, { force: true })))
  }
}

async function readPoint(client: Db, db: DbConfig) {
  const rs = await guard(db, () =>
    client.execute(
      'SELECT CAST(namespace AS BLOB), applied_index, applied_term, CAST(conf AS BLOB), bytes, crc FROM ns_meta WHERE id = 1',
    ),
  )
  const row = rs.rows[0]
  if (!row) throw new StorageCorruptionError(db.path, 'the file has no applied point')
  const [namespace, index, term, conf] = [
    text(row[0], db.path),
    Number(row[1]),
    Number(row[2]),
    text(row[3], db.path),
  ]
  if (crcMeta(namespace, index, term, conf) !== Number(row[5]))
    throw new StorageCorruptionError(db.path, 'the applied point fails its checksum')
  validateNamespaceName(namespace)
  return { namespace, index, term, conf: JSON.parse(conf) as ConfState, stateBytes: Number(row[4]) }
}

/**
 * Verifies a namespace database file (integrity check, ActorMesh's exact schema, the checksums of
 * its applied point and modules) and describes it. Throws `StorageCorruptionError` for anything
 * else, e.g. a `raft.db` or a truncated file.
 */
export async function inspectNamespaceFile(
  path: string,
  options?: NamespaceFileOptions,
): Promise<NamespaceFileInfo> {
  return withFile(path, options, async (client, db) => {
    const point = await readPoint(client, db)
    const rs = await guard(db, () =>
      client.execute(
        'SELECT version, CAST(hash AS BLOB), bytes, CAST(metadata AS BLOB), crc FROM modules ORDER BY version',
      ),
    )
    const modules = rs.rows.map((r) => {
      const m = { version: Number(r[0]), hash: text(r[1], path) }
      const crc = crcModule(point.namespace, m.version, m.hash, blob(r[2], path), text(r[3], path))
      if (crc !== Number(r[4]))
        throw new StorageCorruptionError(path, `module version ${m.version} fails its checksum`)
      return m
    })
    return { ...point, modules }
  })
}

/** Where a rebased file's applied point moves to. */
export interface RebasePoint {
  index: number
  term: number
  conf: ConfState
}

/**
 * Moves the applied point of a namespace file that is not open anywhere to `point` (any index,
 * also below the one it holds) and applies `writes`, in one transaction; then checkpoints, so the
 * file is self-contained. The file must hold namespace `namespace`.
 */
export async function rebaseNamespaceFile(
  path: string,
  namespace: string,
  point: RebasePoint,
  writes: StateWrite[],
  options?: NamespaceFileOptions,
): Promise<void> {
  if (!Number.isInteger(point.index) || point.index < 0 || !Number.isInteger(point.term) || point.term < 0)
    throw new RangeError(`Cannot rebase '${path}' to index '${point.index}' term '${point.term}'`)
  await withFile(path, options, async (client, db) => {
    const held = await readPoint(client, db)
    if (held.namespace !== namespace)
      throw new RangeError(
        `Cannot rebase '${path}': it holds namespace '${held.namespace}', not '${namespace}'`,
      )
    const { stmts, bytesDelta } = await guard(db, () => planWrites(client, writes, defaultNamespaceLimits))
    const ct = confText(point.conf)
    stmts.push({
      sql: 'UPDATE ns_meta SET applied_index = ?, applied_term = ?, conf = ?, crc = ?, bytes = bytes + ? WHERE id = 1',
      args: [point.index, point.term, ct, crcMeta(namespace, point.index, point.term, ct), bytesDelta],
    })
    await guard(db, () => client.batch(stmts, 'write'))
  })
}

/**
 * Replaces `store`'s database with the file at `path` (same filesystem), atomically: under the
 * writer lock, the live file is closed, its `-wal`/`-shm` removed, `path` renamed over it, the
 * directory fsynced and the store reopened (and verified). The file must hold exactly `point`.
 * Returns false, leaving both files alone, when the store has already applied `point.index`.
 */
export async function swapNamespaceFile(
  store: NamespaceStore,
  path: string,
  point: { index: number; term: number },
  options?: { signal?: AbortSignal },
): Promise<boolean> {
  options?.signal?.throwIfAborted()
  return store.lock.run(async () => {
    if (point.index <= store.applied().index) return false
    await store.beginSwap()
    try {
      await Promise.all(['-wal', '-shm', '-journal'].map((s) => rm(`${store.path}${s}`, { force: true })))
      await rename(path, store.path)
      await syncDir(dirname(store.path))
      await store.reopen()
    } finally {
      store.endSwap()
    }
    const now = store.applied()
    assert(now.index === point.index && now.term === point.term, 'swapped-in file has another applied point')
    return true
  })
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
