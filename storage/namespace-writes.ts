/**
 * Turning one applied batch of writes into SQL. Byte accounting is incremental: one statement of
 * indexed look-ups gives the old size of every written key and the current total of every written
 * actor, the new totals are computed here (and checked against `actorStateBytesMax` before anything is
 * written), and the statements set them beside the writes. Rows travel as one JSON argument per
 * statement, so each kind of statement is one SQL text, prepared once whatever the batch's size
 * (statements with hundreds of parameters would be new texts, and preparing them cost more than
 * the writes).
 */
import type { Db, SqlStatement } from './db.js'
import { StorageQuotaError } from './errors.js'
import { crcKv, type NamespaceLimits } from './namespace-schema.js'
import type { StateWrite } from './state-store.js'

/** What a batch does, ready to run in one transaction. */
export interface WritePlan {
  stmts: SqlStatement[]
  /** Change of the namespace's byte total. */
  bytesDelta: number
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
): Promise<WritePlan> {
  const list = lastWrites(writes)
  if (list.length === 0) return { stmts: [], bytesDelta: 0 }
  const keysJson = JSON.stringify(list.map((w) => [w.actor, w.key]))
  const actors = [...new Set(list.map((w) => w.actor))]
  const sizes = await client.execute({ sql: SIZES, args: [keysJson, JSON.stringify(actors)] })
  const oldSize = new Map<number, number>(pairs(sizes.rows[0]?.[0]))
  const totals = new Map<string, number>()
  for (const [i, bytes] of pairs(sizes.rows[0]?.[1])) totals.set(actors[i]!, bytes)
  let bytesDelta = 0
  const dels: Array<[string, string]> = []
  const sets: Array<[string, string, string, number]> = []
  list.forEach((w, i) => {
    const before = oldSize.get(i) ?? 0
    const after = w.value === null ? 0 : Buffer.byteLength(w.key) + w.value.byteLength
    const delta = after - before
    bytesDelta += delta
    totals.set(w.actor, (totals.get(w.actor) ?? 0) + delta)
    if (w.value === null) {
      if (oldSize.has(i)) dels.push([w.actor, w.key])
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
  return { stmts, bytesDelta }
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
