/** Helpers for archive tests: seeded bytes, manifests, and hand-built archives for bad input. */
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { ArchiveWriter } from '../../node/backup/archive.js'
import {
  ARCHIVE_FORMAT_VERSION,
  type ArchiveManifest,
  type ArchivePart,
  partName,
} from '../../node/backup/manifest.js'
import { seeded } from '../storage/helpers.js'

/** `n` bytes from a seeded generator. */
export function seededBytes(seed: number, n: number): Uint8Array {
  const rnd = seeded(seed)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = rnd(256)
  return out
}

/** The part header of `bytes` as namespace `ns` at `index`. */
export function partOf(ns: string, bytes: Uint8Array, index = 10, term = 2): ArchivePart {
  return {
    name: partName(ns),
    namespace: ns,
    index,
    term,
    bytes: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  }
}

/** A manifest describing `parts` (one namespace each). */
export function manifestOf(parts: ArchivePart[]): ArchiveManifest {
  return {
    format: ARCHIVE_FORMAT_VERSION,
    createdAt: '2025-01-01T00:00:00.000Z',
    source: { node: 'http://127.0.0.1:1', peer: 'p1', systemLeader: 'p1' },
    catalog: { nodes: [], namespaces: [] },
    namespaces: parts.map((p) => ({
      name: p.namespace,
      replicationFactor: 3,
      barrierIndex: p.index,
      index: p.index,
      term: p.term,
      modules: [],
      part: p.name,
    })),
    parts,
  }
}

/** `bytes` as chunks of `size`. */
export async function* chunked(bytes: Uint8Array, size = 300_000): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, at + size)
}

/** Writes an archive of `members` (namespace → bytes) to `path`. */
export async function writeArchive(
  path: string,
  members: Array<[string, Uint8Array]>,
  key?: Uint8Array,
): Promise<ArchiveManifest> {
  const writer = await ArchiveWriter.create(path, key ? { key } : {})
  const parts = members.map(([ns, bytes]) => partOf(ns, bytes))
  for (let i = 0; i < members.length; i++) await writer.addPart(parts[i]!, chunked(members[i]![1]))
  const manifest = manifestOf(parts)
  await writer.finish(manifest)
  return manifest
}

/**
 * A plain archive built by hand, record by record, with a correct END hash (DATA payloads excluded): for input the writer
 * refuses to produce (an escaping member name, a manifest that disagrees).
 */
export async function writeRawArchive(
  path: string,
  records: Array<[type: number, payload: Uint8Array]>,
  version = ARCHIVE_FORMAT_VERSION,
): Promise<void> {
  const header = Buffer.alloc(12)
  Buffer.from([0x89, 0x41, 0x4d, 0x53, 0x4e, 0x41, 0x50, 0x0a]).copy(header)
  header.writeUInt16BE(version, 8)
  const body: Buffer[] = [header]
  const whole = createHash('sha256').update(header)
  for (const [type, payload] of records) {
    const head = Buffer.alloc(5)
    head[0] = type
    head.writeUInt32BE(payload.byteLength, 1)
    body.push(head, Buffer.from(payload))
    whole.update(head)
    if (type !== RECORD.Data) whole.update(payload)
  }
  const digest = whole.digest()
  const end = Buffer.alloc(5)
  end[0] = 4
  end.writeUInt32BE(32, 1)
  await writeFile(path, Buffer.concat([...body, end, digest]))
}

export const RECORD = { Part: 1, Data: 2, Manifest: 3, End: 4 } as const

export const json = (v: unknown) => Buffer.from(JSON.stringify(v))
