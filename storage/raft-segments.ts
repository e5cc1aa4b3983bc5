/**
 * The log of a group is stored as *segments*: the entries of one persist for one group, packed into
 * one row `(grp, first, last, data, crc, bounds_crc)`. One row per persist instead of one per entry
 * made appends about three times cheaper (measured: SQLite's per-row cost dominated). Segments of a
 * group never overlap: truncating a conflicting suffix deletes the segments that start inside it
 * and lowers `last` of the one that straddles it (its packed tail stays but is no longer part of
 * the log). Compaction deletes segments that end at or before the compaction point; a straddling
 * one keeps its compacted head, which loading skips.
 *
 * Packed entries: for each entry, term (float64), type (uint8), data length (uint32), data.
 */
import { crc32 } from 'node:zlib'
import type { Entry, EntryType } from '../consensus/index.js'
import type { SqlStatement } from './db.js'
import { StorageCorruptionError } from './errors.js'

const HEADER_BYTES = 13

/** Bounds of one stored segment (what the store keeps in memory per group). */
export interface SegmentBounds {
  first: number
  last: number
}

/** Packs consecutive entries into one buffer. */
export function packEntries(entries: Entry[]): Uint8Array {
  let size = 0
  for (const e of entries) size += HEADER_BYTES + e.data.byteLength
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let at = 0
  for (const e of entries) {
    view.setFloat64(at, e.term)
    view.setUint8(at + 8, e.type)
    view.setUint32(at + 9, e.data.byteLength)
    out.set(e.data, at + HEADER_BYTES)
    at += HEADER_BYTES + e.data.byteLength
  }
  return out
}

/** Unpacks a segment whose first entry has index `first`; data are views into `packed`. */
export function unpackEntries(packed: Uint8Array, first: number, path: string, group: string): Entry[] {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength)
  const out: Entry[] = []
  for (let at = 0; at < packed.byteLength; ) {
    if (at + HEADER_BYTES > packed.byteLength) break
    const length = view.getUint32(at + 9)
    const end = at + HEADER_BYTES + length
    if (end > packed.byteLength) break
    out.push({
      index: first + out.length,
      term: view.getFloat64(at),
      type: view.getUint8(at + 8) as EntryType,
      data: packed.subarray(at + HEADER_BYTES, end),
    })
    at = end
    if (at === packed.byteLength) return out
  }
  throw new StorageCorruptionError(
    path,
    `segment at ${first} of group '${group}' is not a whole list of entries`,
  )
}

/** CRC-32 of a segment's content: group, first index and the packed entries. */
export function crcSegment(group: string, first: number, packed: Uint8Array): number {
  return crc32(packed, crc32(`${group}\0${first}`))
}

/** CRC-32 of a segment's bounds (`last` changes when a suffix is truncated). */
export function crcBounds(group: string, first: number, last: number): number {
  return crc32(`${group}\0${first}\0${last}`)
}

/**
 * Statements that make room for entries starting at `from`: delete the segments that start at or
 * after it, and end the one that straddles it at `from - 1` (or delete it when nothing it still
 * holds is above `offset`, the compaction point). Returns the bounds afterwards.
 */
export function truncateSegments(
  group: string,
  bounds: SegmentBounds[],
  from: number,
  offset: number,
): { stmts: SqlStatement[]; bounds: SegmentBounds[] } {
  const stmts: SqlStatement[] = []
  const kept: SegmentBounds[] = []
  if (bounds.some((b) => b.first >= from)) {
    stmts.push({ sql: 'DELETE FROM raft_segment WHERE grp = ? AND first >= ?', args: [group, from] })
  }
  for (const b of bounds) {
    if (b.first >= from) continue
    if (b.last < from) {
      kept.push(b)
    } else if (from - 1 <= offset) {
      stmts.push({ sql: 'DELETE FROM raft_segment WHERE grp = ? AND first = ?', args: [group, b.first] })
    } else {
      stmts.push({
        sql: 'UPDATE raft_segment SET last = ?, bounds_crc = ? WHERE grp = ? AND first = ?',
        args: [from - 1, crcBounds(group, b.first, from - 1), group, b.first],
      })
      kept.push({ first: b.first, last: from - 1 })
    }
  }
  return { stmts, bounds: kept }
}

/** The INSERT of one segment holding `entries` (consecutive, non-empty). */
export function insertSegment(
  group: string,
  entries: Entry[],
): { stmt: SqlStatement; bounds: SegmentBounds } {
  const first = entries[0]!.index
  const last = entries[entries.length - 1]!.index
  const packed = packEntries(entries)
  return {
    stmt: {
      sql: 'INSERT INTO raft_segment (grp, first, last, data, crc, bounds_crc) VALUES (?, ?, ?, ?, ?, ?)',
      args: [group, first, last, packed, crcSegment(group, first, packed), crcBounds(group, first, last)],
    },
    bounds: { first, last },
  }
}
