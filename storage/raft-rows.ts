/**
 * Rows of raft.db: their checksums, the multi-row inserts for entries, and loading every group
 * back into memory with each row verified, so a flipped byte is a `StorageCorruptionError`.
 */
import { crc32 } from 'node:zlib'
import type { Client, InStatement } from '@libsql/client'
import { type ConfState, type Entry, type HardState, MemoryStorage } from '../consensus/index.js'
import { StorageCorruptionError } from './errors.js'
import { blob, text } from './sqlite.js'

/** CRC-32 of an entry: its group, index, term and type, then its data. */
export function crcEntry(group: string, e: Entry): number {
  return crc32(e.data, crc32(`${group}\0${e.index}\0${e.term}\0${e.type}`))
}

/** CRC-32 of a group's hard state and compaction point. */
export function crcGroupRow(group: string, hs: HardState, compactIndex: number, compactTerm: number): number {
  return crc32(`${group}\0${hs.term}\0${hs.vote}\0${hs.commit}\0${compactIndex}\0${compactTerm}`)
}

/** CRC-32 of a group's snapshot row. */
export function crcSnapshotRow(
  group: string,
  index: number,
  term: number,
  conf: string,
  data: Uint8Array,
): number {
  return crc32(data, crc32(`${group}\0${index}\0${term}\0${conf}`))
}

/**
 * One INSERT for all `entries` of `group`: the rows travel as one JSON argument (data as hex) and
 * `json_each` expands them, because the client prepares every statement anew and preparing a
 * statement with hundreds of parameters cost more than SQLite's inserts themselves.
 */
export function entryInserts(group: string, entries: Entry[]): InStatement[] {
  const rows: Array<[number, number, number, string, number]> = []
  for (const e of entries) {
    const hex = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('hex')
    rows.push([e.index, e.term, e.type, hex, crcEntry(group, e)])
  }
  return [{ sql: ENTRY_INSERT_SQL, args: [group, JSON.stringify(rows)] }]
}

const ENTRY_INSERT_SQL = `INSERT INTO raft_entry (grp, idx, term, type, data, crc)
  SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, unhex(j.value ->> 3), j.value ->> 4 FROM json_each(?2) AS j`

interface GroupRow {
  hs: HardState
  compactIndex: number
  compactTerm: number
}

interface SnapshotRow {
  index: number
  term: number
  conf: ConfState
  data: Uint8Array
}

async function readGroupRows(client: Client, path: string): Promise<Map<string, GroupRow>> {
  const rs = await client.execute(
    'SELECT CAST(grp AS BLOB), term, CAST(vote AS BLOB), commit_index, compact_index, compact_term, crc FROM raft_group',
  )
  const out = new Map<string, GroupRow>()
  for (const r of rs.rows) {
    const group = text(r[0], path)
    const hs: HardState = { term: Number(r[1]), vote: text(r[2], path), commit: Number(r[3]) }
    const row = { hs, compactIndex: Number(r[4]), compactTerm: Number(r[5]) }
    if (crcGroupRow(group, hs, row.compactIndex, row.compactTerm) !== Number(r[6])) {
      throw new StorageCorruptionError(path, `hard state of group '${group}' fails its checksum`)
    }
    out.set(group, row)
  }
  return out
}

async function readSnapshotRows(client: Client, path: string): Promise<Map<string, SnapshotRow>> {
  const rs = await client.execute(
    'SELECT CAST(grp AS BLOB), idx, term, CAST(conf AS BLOB), data, crc FROM raft_snapshot',
  )
  const out = new Map<string, SnapshotRow>()
  for (const r of rs.rows) {
    const group = text(r[0], path)
    const conf = text(r[3], path)
    const data = blob(r[4], path)
    if (crcSnapshotRow(group, Number(r[1]), Number(r[2]), conf, data) !== Number(r[5])) {
      throw new StorageCorruptionError(path, `snapshot of group '${group}' fails its checksum`)
    }
    out.set(group, { index: Number(r[1]), term: Number(r[2]), conf: JSON.parse(conf) as ConfState, data })
  }
  return out
}

async function readEntries(client: Client, path: string): Promise<Map<string, Entry[]>> {
  const rs = await client.execute(
    'SELECT CAST(grp AS BLOB), idx, term, type, data, crc FROM raft_entry ORDER BY grp, idx',
  )
  const out = new Map<string, Entry[]>()
  for (const r of rs.rows) {
    const group = text(r[0], path)
    const e: Entry = {
      index: Number(r[1]),
      term: Number(r[2]),
      type: Number(r[3]) as Entry['type'],
      data: blob(r[4], path),
    }
    if (crcEntry(group, e) !== Number(r[5])) {
      throw new StorageCorruptionError(path, `entry ${e.index} of group '${group}' fails its checksum`)
    }
    let list = out.get(group)
    if (!list) out.set(group, (list = []))
    list.push(e)
  }
  return out
}

/** Builds one group's view and checks that its rows fit together (consecutive log, snapshot order). */
function buildView(
  path: string,
  group: string,
  g: GroupRow,
  snap: SnapshotRow,
  entries: Entry[],
): MemoryStorage {
  const bad = (why: string) => new StorageCorruptionError(path, `group '${group}': ${why}`)
  entries.forEach((e, i) => {
    if (e.index !== g.compactIndex + 1 + i) throw bad(`log has a hole before index ${e.index}`)
  })
  if (snap.index < g.compactIndex) throw bad(`compacted to ${g.compactIndex}, past snapshot ${snap.index}`)
  const view = new MemoryStorage()
  const real = { meta: { index: snap.index, term: snap.term, conf: snap.conf }, data: snap.data }
  if (snap.index === g.compactIndex) {
    if (snap.term !== g.compactTerm) throw bad(`snapshot term ${snap.term} differs from compaction term`)
    view.applySnapshot(real)
    view.append(entries)
  } else {
    view.applySnapshot({
      meta: { index: g.compactIndex, term: g.compactTerm, conf: snap.conf },
      data: snap.data,
    })
    view.append(entries)
    if (snap.index > view.lastIndex()) throw bad(`snapshot ${snap.index} is beyond the log`)
    if (view.term(snap.index) !== snap.term) throw bad(`snapshot term ${snap.term} differs from the log`)
    view.createSnapshot(snap.index, snap.conf, snap.data)
  }
  if (g.hs.commit > view.lastIndex())
    throw bad(`commit ${g.hs.commit} is beyond last index ${view.lastIndex()}`)
  view.setHardState(g.hs)
  return view
}

/** Loads and verifies every group of raft.db. */
export async function loadGroups(client: Client, path: string): Promise<Map<string, MemoryStorage>> {
  const groups = await readGroupRows(client, path)
  const snapshots = await readSnapshotRows(client, path)
  const entries = await readEntries(client, path)
  const views = new Map<string, MemoryStorage>()
  for (const [group, g] of groups) {
    const snap = snapshots.get(group)
    if (!snap) throw new StorageCorruptionError(path, `group '${group}' has no snapshot row`)
    views.set(group, buildView(path, group, g, snap, entries.get(group) ?? []))
  }
  for (const group of [...snapshots.keys(), ...entries.keys()]) {
    if (!groups.has(group)) throw new StorageCorruptionError(path, `rows of unknown group '${group}'`)
  }
  return views
}
