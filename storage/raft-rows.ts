/**
 * Rows of raft.db: their checksums, and loading every group
 * back into memory with each row verified, so a flipped byte is a `StorageCorruptionError`.
 */
import { crc32 } from 'node:zlib'
import { type ConfState, type Entry, type HardState, MemoryStorage } from '../consensus/index.js'
import type { Db } from './db.js'
import { StorageCorruptionError } from './errors.js'
import { crcBounds, crcSegment, type SegmentBounds, unpackEntries } from './raft-segments.js'
import { blob, text } from './sqlite.js'

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

async function readGroupRows(client: Db, path: string): Promise<Map<string, GroupRow>> {
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

async function readSnapshotRows(client: Db, path: string): Promise<Map<string, SnapshotRow>> {
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

interface SegmentRows {
  bounds: SegmentBounds[]
  entries: Entry[]
}

async function readSegments(client: Db, path: string): Promise<Map<string, SegmentRows>> {
  const rs = await client.execute(
    'SELECT CAST(grp AS BLOB), first, last, data, crc, bounds_crc FROM raft_segment ORDER BY grp, first',
  )
  const out = new Map<string, SegmentRows>()
  for (const r of rs.rows) {
    const group = text(r[0], path)
    const [first, last] = [Number(r[1]), Number(r[2])]
    const packed = blob(r[3], path)
    if (crcSegment(group, first, packed) !== Number(r[4]) || crcBounds(group, first, last) !== Number(r[5])) {
      throw new StorageCorruptionError(path, `log segment at ${first} of group '${group}' fails its checksum`)
    }
    const entries = unpackEntries(packed, first, path, group)
    if (last < first || last > first + entries.length - 1) {
      throw new StorageCorruptionError(
        path,
        `log segment at ${first} of group '${group}' ends outside its entries`,
      )
    }
    let rows = out.get(group)
    if (!rows) out.set(group, (rows = { bounds: [], entries: [] }))
    rows.bounds.push({ first, last })
    for (const e of entries) if (e.index <= last) rows.entries.push(e)
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
  entries = entries.filter((e) => e.index > g.compactIndex)
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

/** Every group of raft.db, loaded and verified: its `Storage` view and its segments' bounds. */
export interface LoadedGroups {
  views: Map<string, MemoryStorage>
  segments: Map<string, SegmentBounds[]>
}

/** Loads and verifies every group of raft.db. */
export async function loadGroups(client: Db, path: string): Promise<LoadedGroups> {
  const groups = await readGroupRows(client, path)
  const snapshots = await readSnapshotRows(client, path)
  const logs = await readSegments(client, path)
  const views = new Map<string, MemoryStorage>()
  const segments = new Map<string, SegmentBounds[]>()
  for (const [group, g] of groups) {
    const snap = snapshots.get(group)
    if (!snap) throw new StorageCorruptionError(path, `group '${group}' has no snapshot row`)
    const log = logs.get(group) ?? { bounds: [], entries: [] }
    views.set(group, buildView(path, group, g, snap, log.entries))
    segments.set(group, log.bounds)
  }
  for (const group of [...snapshots.keys(), ...logs.keys()]) {
    if (!groups.has(group)) throw new StorageCorruptionError(path, `rows of unknown group '${group}'`)
  }
  return { views, segments }
}
