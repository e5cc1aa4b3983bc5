/**
 * Cluster snapshot archives on real LibSQL files in a temp directory:
 *  - `snapshot.create_mb_per_s`: namespace state (500 MB in 5 namespaces; 50 MB quick) archived as
 *    `actormesh snapshot` does on the node and the CLI, minus the loopback HTTP hop: a consistent
 *    copy of each namespace (VACUUM INTO + SHA-256), streamed through the archive writer (records,
 *    per-part and whole-archive SHA-256) into a file, fsynced and renamed;
 *  - `snapshot.restore_mb_per_s`: `actormesh restore --data` of that archive: read and verify
 *    every record, write each database, check it (integrity check, schema, manifest), write
 *    raft.db with the catalog, rename into place;
 *  - the same two with `--key-file` (AES-256-GCM), and `snapshot.verify_mb_per_s`.
 * MB/s counts namespace state (database bytes), not archive bytes.
 */
import { join } from 'node:path'
import { ArchiveWriter, verifyArchive } from '../../node/backup/archive.js'
import { restoreToDataDir } from '../../node/backup/bootstrap.js'
import {
  ARCHIVE_FORMAT_VERSION,
  type ArchiveManifest,
  type ArchivePart,
  partName,
} from '../../node/backup/manifest.js'
import { createNamespaceSnapshot, type NamespaceStore, openNamespaceStore } from '../../storage/index.js'
import { seeded, tempDir } from '../../test/storage/helpers.js'
import type { BenchFigure, BenchGroup } from '../types.js'

const MB = 1024 * 1024
const NAMESPACES = 5

/** Fills a namespace with `mb` MB of 16 KiB values (seeded bytes, so nothing compresses away). */
async function fill(store: NamespaceStore, mb: number, seed: number): Promise<void> {
  const rnd = seeded(seed)
  const value = new Uint8Array(16 * 1024)
  const writes = (mb * MB) / value.length
  for (let w = 0, index = 1; w < writes; index++) {
    const batch = []
    for (let i = 0; i < 256 && w < writes; i++, w++) {
      for (let j = 0; j < value.length; j += 4) value[j] = rnd(256)
      batch.push({ actor: `actor-${w % 1000}`, key: `k${w}`, value: value.slice() })
    }
    await store.apply({ index, term: 1, writes: batch })
  }
}

/** Archives every store into `path` as the snapshot command does; returns the state bytes and where the time went. */
async function archive(
  stores: NamespaceStore[],
  path: string,
  key?: Uint8Array,
): Promise<{ bytes: number; copyS: number; streamS: number }> {
  let copyS = 0
  let streamS = 0
  const writer = await ArchiveWriter.create(path, key ? { key } : {})
  const parts: ArchivePart[] = []
  const namespaces: ArchiveManifest['namespaces'] = []
  for (const store of stores) {
    const t0 = performance.now()
    const snap = await createNamespaceSnapshot(store)
    const t1 = performance.now()
    copyS += (t1 - t0) / 1000
    const m = snap.meta
    const part = {
      name: partName(m.namespace),
      namespace: m.namespace,
      index: m.index,
      term: m.term,
      bytes: m.bytes,
      sha256: m.sha256,
    }
    await writer.addPart(part, snap.chunks)
    streamS += (performance.now() - t1) / 1000
    parts.push(part)
    const mods = (await store.modules()).map((x) => ({ version: x.version, hash: x.hash }))
    namespaces.push({
      name: m.namespace,
      replicationFactor: 3,
      barrierIndex: m.index,
      index: m.index,
      term: m.term,
      modules: mods,
      part: part.name,
    })
  }
  await writer.finish({
    format: ARCHIVE_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    source: { node: 'bench', peer: 'bench', systemLeader: 'bench' },
    catalog: { nodes: [], namespaces: [] },
    namespaces,
    parts,
  })
  return { bytes: parts.reduce((a, p) => a + p.bytes, 0), copyS, streamS }
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; s: number }> {
  const t0 = performance.now()
  const value = await run()
  return { value, s: (performance.now() - t0) / 1000 }
}

const run: BenchGroup = async ({ quick, log: say }) => {
  const { dir, remove } = await tempDir('am-bench-snapshot-')
  const figures: BenchFigure[] = []
  const stores: NamespaceStore[] = []
  try {
    const total = quick ? 50 : 500
    for (let i = 0; i < NAMESPACES; i++) {
      const store = await openNamespaceStore({ dataDir: join(dir, 'src'), name: `ns${i}` })
      await fill(store, total / NAMESPACES, 1000 + i)
      stores.push(store)
    }
    const key = new Uint8Array(32).fill(9)
    for (const encrypted of [false, true]) {
      const file = join(dir, encrypted ? 'enc.amsnap' : 'plain.amsnap')
      const created = await timed(() => archive(stores, file, encrypted ? key : undefined))
      const { bytes, copyS, streamS } = created.value
      const verified = await timed(() => verifyArchive(file, encrypted ? { key } : {}))
      const restored = await timed(() =>
        restoreToDataDir(file, join(dir, encrypted ? 'enc-restored' : 'restored'), encrypted ? { key } : {}),
      )
      const mbs = (s: number) => bytes / MB / s
      const tag = encrypted ? ' (AES-256-GCM)' : ''
      say(
        `${(bytes / MB).toFixed(0)} MB of state${tag}: create ${created.s.toFixed(2)} s (copies: VACUUM INTO + SHA-256 ${copyS.toFixed(2)} s, archive records ${streamS.toFixed(2)} s), verify ${verified.s.toFixed(2)} s, restore ${restored.s.toFixed(2)} s`,
      )
      const note = `${(bytes / MB).toFixed(0)} MB in ${NAMESPACES} namespaces${tag}`
      const suffix = encrypted ? '_encrypted' : ''
      figures.push({
        key: `snapshot.create${suffix}_mb_per_s`,
        value: Math.round(mbs(created.s)),
        unit: 'MB/s',
        target: '>= 100',
        note: `${note}; VACUUM INTO + SHA-256 + archive records + fsync`,
      })
      figures.push({
        key: `snapshot.restore${suffix}_mb_per_s`,
        value: Math.round(mbs(restored.s)),
        unit: 'MB/s',
        target: '>= 100',
        note: `${note}; read + verify archive, write + fsync, integrity check, raft.db`,
      })
      if (!encrypted)
        figures.push({
          key: 'snapshot.verify_mb_per_s',
          value: Math.round(mbs(verified.s)),
          unit: 'MB/s',
          note,
        })
    }
    return figures
  } finally {
    for (const s of stores) await s.close()
    await remove()
  }
}

export default run
