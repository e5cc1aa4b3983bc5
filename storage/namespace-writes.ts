/**
 * Turning one applied batch of writes into SQL. Byte accounting is incremental: the old size of
 * every written key and the current total of every written actor come from `SizeCache` or one
 * statement of indexed look-ups, the new totals are computed here (and checked against
 * `actorStateBytesMax` before anything is written), and the statements set them beside the
 * writes. Rows travel as one JSON argument per statement, so each kind of statement is one SQL
 * text, prepared once whatever the batch's size (statements with hundreds of parameters would be
 * new texts, and preparing them cost more than the writes).
 */
import type { Db, SqlStatement } from './db.js'
import { StorageQuotaError } from './errors.js'
import { crcKv, type NamespaceLimits } from './namespace-schema.js'
import type { StateWrite } from './state-store.js'

/** The size of a key that has no row (an existing key may hold 0 bytes: an empty key and value). */
const ABSENT = -1
/** A size not looked up yet. */
const UNKNOWN = -2

/** What a batch does, ready to run in one transaction. */
export interface WritePlan {
  stmts: SqlStatement[]
  /** Change of the namespace's byte total. */
  bytesDelta: number
  /**
   * Sizes of the written keys (`ABSENT`: deleted) and totals of the written actors once the
   * transaction committed: what `SizeCache.remember` keeps.
   */
  after?: {
    keys: Array<[actor: string, key: string, bytes: number]>
    actors: Array<[actor: string, bytes: number]>
  }
}

/**
 * The byte size of keys and the totals of actors, exactly as the database holds them, for the
 * keys and actors written or looked up last (least recently used dropped past `entriesMax` of
 * each). Planning reads what it holds instead of asking the database: that look-up was a quarter
 * of a namespace apply's time at 256 clients. Only the store's own applies may change the file
 * while a cache is in use: it records each committed plan (`remember`), and is cleared whenever
 * the file is replaced or closed.
 */
export class SizeCache {
  /** `actor\0key` → bytes, or `ABSENT` for a key known to have no row. */
  private readonly keys = new Map<string, number>()
  private readonly actors = new Map<string, number>()

  constructor(readonly entriesMax: number) {}

  keyBytes(actor: string, key: string): number | undefined {
    return touch(this.keys, `${actor}\0${key}`)
  }

  actorBytes(actor: string): number | undefined {
    return touch(this.actors, actor)
  }

  /** Records sizes read from the database or written by a committed transaction. */
  remember(after: NonNullable<WritePlan['after']>): void {
    for (const [actor, key, bytes] of after.keys) put(this.keys, `${actor}\0${key}`, bytes, this.entriesMax)
    for (const [actor, bytes] of after.actors) put(this.actors, actor, bytes, this.entriesMax)
  }

  clear(): void {
    this.keys.clear()
    this.actors.clear()
  }
}

/** `map`'s value for `k`, made the most recently used. */
function touch(map: Map<string, number>, k: string): number | undefined {
  const v = map.get(k)
  if (v !== undefined) {
    map.delete(k)
    map.set(k, v)
  }
  return v
}

function put(map: Map<string, number>, k: string, v: number, max: number): void {
  map.delete(k)
  if (max <= 0) return
  map.set(k, v)
  if (map.size > max) map.delete(map.keys().next().value!)
}

// One statement answers both look-ups, each as one JSON array of [position, bytes] (one row is
// much cheaper to hand over than many, and one statement than two: ~40 µs less an apply):
// the old size of each written key, and the current total of each written actor.
const SIZES = `SELECT
  (SELECT json_group_array(json_array(j.key, length(CAST(kv.key AS BLOB)) + length(kv.value)))
    FROM json_each(?1) AS j JOIN kv ON kv.actor = j.value ->> 0 AND kv.key = j.value ->> 1),
  (SELECT json_group_array(json_array(j.key, u.bytes)) FROM json_each(?2) AS j
    JOIN actor_usage u ON u.actor = j.value)`
const DELETE_KEYS = `DELETE FROM kv WHERE rowid IN (SELECT kv.rowid FROM json_each(?) AS j
  JOIN kv ON kv.actor = j.value ->> 0 AND kv.key = j.value ->> 1)`
const UPSERT_KEYS = `INSERT INTO kv (actor, key, value, crc)
  SELECT j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3 FROM json_each(?) AS j WHERE true
  ON CONFLICT (actor, key) DO UPDATE SET value = excluded.value, crc = excluded.crc`
const SET_TOTALS = `INSERT INTO actor_usage (actor, bytes) SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?) AS j
  WHERE true ON CONFLICT (actor) DO UPDATE SET bytes = excluded.bytes`
const DROP_TOTALS = 'DELETE FROM actor_usage WHERE actor IN (SELECT value FROM json_each(?))'

/** The `[position, bytes]` pairs of a json_group_array answer. */
function pairs(json: unknown): Array<[number, number]> {
  return typeof json === 'string' ? (JSON.parse(json) as Array<[number, number]>) : []
}

/** The last write of each (actor, key) in batch order: only it reaches the database. */
function lastWrites(writes: StateWrite[]): StateWrite[] {
  const last = new Map<string, StateWrite>()
  for (const w of writes) last.set(`${w.actor}\0${w.key}`, w)
  return [...last.values()]
}

/**
 * Plans `writes` against the current database. Must run under the namespace's writer lock, so
 * that nothing changes between these reads and the transaction that runs the plan. Throws
 * `StorageQuotaError` (nothing written) when an actor would end over `actorStateBytesMax`.
 */
export async function planWrites(
  client: Db,
  writes: StateWrite[],
  limits: NamespaceLimits,
  cache?: SizeCache,
): Promise<WritePlan> {
  const list = lastWrites(writes)
  if (list.length === 0) return { stmts: [], bytesDelta: 0 }
  const actors = [...new Set(list.map((w) => w.actor))]
  const { oldSize, totals } = await currentSizes(client, list, actors, cache)
  let bytesDelta = 0
  const dels: Array<[string, string]> = []
  const sets: Array<[string, string, string, number]> = []
  const after: NonNullable<WritePlan['after']> = { keys: [], actors: [] }
  list.forEach((w, i) => {
    const held = oldSize[i]!
    const bytes = w.value === null ? 0 : Buffer.byteLength(w.key) + w.value.byteLength
    const delta = bytes - Math.max(held, 0)
    bytesDelta += delta
    totals.set(w.actor, (totals.get(w.actor) ?? 0) + delta)
    after.keys.push([w.actor, w.key, w.value === null ? ABSENT : bytes])
    if (w.value === null) {
      if (held !== ABSENT) dels.push([w.actor, w.key])
    } else {
      const hex = Buffer.from(w.value.buffer, w.value.byteOffset, w.value.byteLength).toString('hex')
      sets.push([w.actor, w.key, hex, crcKv(w.actor, w.key, w.value)])
    }
  })
  checkQuota(actors, totals, list, limits)
  const stmts: SqlStatement[] = []
  if (dels.length > 0) stmts.push({ sql: DELETE_KEYS, args: [JSON.stringify(dels)] })
  if (sets.length > 0) stmts.push({ sql: UPSERT_KEYS, args: [JSON.stringify(sets)] })
  const keep = actors.filter((a) => totals.get(a)! > 0).map((a) => [a, totals.get(a)!])
  const drop = actors.filter((a) => totals.get(a)! === 0)
  if (keep.length > 0) stmts.push({ sql: SET_TOTALS, args: [JSON.stringify(keep)] })
  if (drop.length > 0) stmts.push({ sql: DROP_TOTALS, args: [JSON.stringify(drop)] })
  for (const a of actors) after.actors.push([a, totals.get(a)!])
  return { stmts, bytesDelta, after }
}

/**
 * The current size of each key of `list` (`ABSENT` when there is no such row) and the total of each
 * of `actors` (0 without a row), from `cache` where it knows them and one statement for the rest.
 */
async function currentSizes(
  client: Db,
  list: StateWrite[],
  actors: string[],
  cache: SizeCache | undefined,
): Promise<{ oldSize: number[]; totals: Map<string, number> }> {
  const oldSize = list.map((w) => cache?.keyBytes(w.actor, w.key) ?? UNKNOWN)
  const totals = new Map<string, number>()
  for (const a of actors) {
    const t = cache?.actorBytes(a)
    if (t !== undefined) totals.set(a, t)
  }
  const missingKeys = oldSize.flatMap((b, i) => (b === UNKNOWN ? [i] : []))
  const missingActors = actors.filter((a) => !totals.has(a))
  if (missingKeys.length === 0 && missingActors.length === 0) return { oldSize, totals }
  const keysJson = JSON.stringify(missingKeys.map((i) => [list[i]!.actor, list[i]!.key]))
  const rs = await client.execute({ sql: SIZES, args: [keysJson, JSON.stringify(missingActors)] })
  const found = new Map<number, number>(pairs(rs.rows[0]?.[0]))
  missingKeys.forEach((i, at) => {
    oldSize[i] = found.get(at) ?? ABSENT
  })
  for (const a of missingActors) totals.set(a, 0)
  for (const [at, bytes] of pairs(rs.rows[0]?.[1])) totals.set(missingActors[at]!, bytes)
  return { oldSize, totals }
}

/** Refuses the batch if an actor that it grows ends over `actorStateBytesMax`. */
function checkQuota(
  actors: string[],
  totals: Map<string, number>,
  list: StateWrite[],
  limits: NamespaceLimits,
): void {
  const growing = new Set(list.filter((w) => w.value !== null).map((w) => w.actor))
  for (const actor of actors) {
    const total = totals.get(actor)!
    if (total > limits.actorStateBytesMax && growing.has(actor)) {
      throw new StorageQuotaError(
        'actorStateBytesMax',
        actor,
        `Cannot apply writes to actor '${actor}': state would be ${total} bytes, over actorStateBytesMax ${limits.actorStateBytesMax}`,
      )
    }
  }
}
