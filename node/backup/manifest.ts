/**
 * The manifest of a snapshot archive (format version 1, docs/backup.md): what the archive holds and
 * how to check it. It is the archive's last record, so it can describe parts that were streamed
 * before it; a reader checks it against the parts it read.
 */
import { NAMESPACE_NAME } from '../../storage/index.js'
import type { CatalogNamespace, CatalogNode } from '../catalog.js'
import { ArchiveCorruptError, ArchiveMemberError } from './errors.js'

/** The format version this build writes and reads. */
export const ARCHIVE_FORMAT_VERSION = 1

/** One member of the archive: a namespace database at an applied point. */
export interface ArchivePart {
  /** `ns/<namespace>.db`: the path it takes under a data directory. */
  name: string
  namespace: string
  /** The applied index and term inside the file. */
  index: number
  term: number
  bytes: number
  /** Hex SHA-256 of the file. */
  sha256: string
}

/** One archived namespace. */
export interface ArchivedNamespace {
  name: string
  replicationFactor: number
  /** The ReadIndex barrier: every write acknowledged before the snapshot began is at or below it. */
  barrierIndex: number
  /** The applied point of the archived copy (at or after the barrier). */
  index: number
  term: number
  /** Module versions stored in the copy, oldest first; the last one runs. */
  modules: Array<{ version: number; hash: string }>
  /** The member holding the database. */
  part: string
}

/** The manifest: the last record of an archive. */
export interface ArchiveManifest {
  format: number
  /** ISO 8601. */
  createdAt: string
  source: {
    /** The gateway the snapshot was taken through, and that node's peer id. */
    node: string
    peer: string
    /** The `_system` leader as that node saw it. */
    systemLeader: string
  }
  /** The catalog as the source node held it (nodes, every namespace with its replicas). */
  catalog: { nodes: CatalogNode[]; namespaces: CatalogNamespace[] }
  namespaces: ArchivedNamespace[]
  parts: ArchivePart[]
}

/** The only member names an archive may hold: `ns/<namespace>.db`, never anything that could climb out. */
export function partName(namespace: string): string {
  return `ns/${namespace}.db`
}

/** Throws `ArchiveMemberError` unless `name` is `ns/<valid namespace>.db` for `namespace`. */
export function checkPartName(archive: string, name: unknown, namespace: unknown): void {
  const ok =
    typeof name === 'string' &&
    typeof namespace === 'string' &&
    NAMESPACE_NAME.test(namespace) &&
    name === partName(namespace)
  if (!ok)
    throw new ArchiveMemberError(
      `Cannot read archive '${archive}': member name '${String(name).slice(0, 200)}' is not ns/<namespace>.db and could escape the target directory`,
    )
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0
const isHash = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)

/** Checks one part header as read from the archive. */
export function checkPart(archive: string, value: unknown): ArchivePart {
  const p = value as ArchivePart
  if (typeof p !== 'object' || p === null) throw bad(archive, 'a part header is not an object')
  checkPartName(archive, p.name, p.namespace)
  if (!isCount(p.index) || !isCount(p.term) || !isCount(p.bytes) || p.bytes === 0 || !isHash(p.sha256))
    throw bad(archive, `part '${p.name}' has a malformed header`)
  return {
    name: p.name,
    namespace: p.namespace,
    index: p.index,
    term: p.term,
    bytes: p.bytes,
    sha256: p.sha256,
  }
}

/**
 * Checks a manifest's shape and that it describes exactly the parts read before it (same order,
 * sizes, hashes and applied points), each namespace naming one of them.
 */
export function checkManifest(archive: string, value: unknown, parts: ArchivePart[]): ArchiveManifest {
  const m = value as ArchiveManifest
  if (typeof m !== 'object' || m === null) throw bad(archive, 'the manifest is not an object')
  if (m.format !== ARCHIVE_FORMAT_VERSION)
    throw bad(archive, `the manifest says format '${String(m.format)}'`)
  if (typeof m.createdAt !== 'string' || typeof m.source !== 'object' || m.source === null)
    throw bad(archive, 'the manifest lacks createdAt or source')
  if (!Array.isArray(m.catalog?.nodes) || !Array.isArray(m.catalog?.namespaces))
    throw bad(archive, 'the manifest lacks the catalog')
  if (!Array.isArray(m.parts) || !Array.isArray(m.namespaces)) throw bad(archive, 'the manifest lacks parts')
  if (m.parts.length !== parts.length)
    throw bad(archive, `the manifest lists ${m.parts.length} parts, the archive holds ${parts.length}`)
  m.parts.forEach((p, i) => {
    const got = parts[i]!
    const q = checkPart(archive, p)
    if (JSON.stringify(q) !== JSON.stringify(got))
      throw bad(archive, `the manifest's part ${i} ('${q.name}') disagrees with the part in the archive`)
  })
  const names = new Set<string>()
  for (const ns of m.namespaces) {
    const part = parts.find((p) => p.name === ns?.part)
    if (!part || part.namespace !== ns.name || names.has(ns.name))
      throw bad(archive, `namespace '${String(ns?.name)}' names no part of its own`)
    names.add(ns.name)
    if (!Number.isInteger(ns.replicationFactor) || ns.replicationFactor < 1 || ns.replicationFactor > 7)
      throw bad(archive, `namespace '${ns.name}' has replication factor '${ns.replicationFactor}'`)
    if (
      ns.index !== part.index ||
      ns.term !== part.term ||
      !isCount(ns.barrierIndex) ||
      ns.barrierIndex > ns.index
    )
      throw bad(archive, `namespace '${ns.name}' disagrees with its part about its applied point`)
    if (!Array.isArray(ns.modules) || !ns.modules.every((x) => isCount(x?.version) && isHash(x?.hash)))
      throw bad(archive, `namespace '${ns.name}' lists malformed modules`)
  }
  return m
}

function bad(archive: string, detail: string): ArchiveCorruptError {
  return new ArchiveCorruptError(`Cannot read archive '${archive}': ${detail}`)
}
