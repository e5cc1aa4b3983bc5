/**
 * Storage benchmark on real LibSQL files in a temp directory (WAL, synchronous=FULL, so every
 * persist is one fsync'd transaction):
 *  - `storage.log_append_entries_per_s_batch{1,16,256}`: entries per second appended to raft.db
 *    with that many entries per `persist`, and `storage.log_fsyncs_per_s_batch*` the transactions
 *    (fsyncs) per second behind them;
 *  - `storage.apply_writes_per_s`: key writes per second applied to a namespace, 1,000 per batch;
 *  - `storage.snapshot_create_mb_per_s` / `_install_mb_per_s` for a namespace of 200 MB (20 MB
 *    quick): create = VACUUM INTO + SHA-256 + reading every chunk; install = writing the chunks to
 *    a temp file + fsync + SHA-256 check + rename + reopen.
 */
import { join } from 'node:path'
import type { Entry } from '../../consensus/index.js'
import {
  createNamespaceSnapshot,
  installNamespaceSnapshot,
  openNamespaceStore,
  openRaftLogStore,
} from '../../storage/index.js'
import { tempDir } from '../../test/storage/helpers.js'
import type { BenchFigure, BenchGroup } from '../types.js'

const conf = { voters: ['n1', 'n2', 'n3'], learners: [] }
const MB = 1024 * 1024

async function logAppend(dir: string, batch: number, seconds: number) {
  const store = await openRaftLogStore({ path: join(dir, `raft-${batch}.db`) })
  store.open('g', conf)
  const data = new Uint8Array(256).fill(7)
  let next = 1
  let persists = 0
  const start = performance.now()
  while (performance.now() - start < seconds * 1000) {
    const entries: Entry[] = []
    for (let i = 0; i < batch; i++, next++) entries.push({ index: next, term: 1, type: 0, data })
    await store.persist([{ group: 'g', entries, hardState: { term: 1, vote: 'n1', commit: next - 1 } }])
    persists++
    // Keep the in-memory log bounded, as the driver would after snapshots.
    if (next % 8192 < batch) await store.snapshot('g', next - 1, conf, new Uint8Array(), 1000)
  }
  const elapsed = (performance.now() - start) / 1000
  await store.close()
  return { entriesPerS: (next - 1) / elapsed, fsyncsPerS: persists / elapsed }
}

async function applyWrites(dir: string, seconds: number): Promise<number> {
  const ns = await openNamespaceStore({ dataDir: dir, name: 'apply' })
  const value = new Uint8Array(100).fill(1)
  let index = 0
  let writes = 0
  const start = performance.now()
  while (performance.now() - start < seconds * 1000) {
    const batch = []
    for (let i = 0; i < 1000; i++, writes++) {
      batch.push({ actor: `actor-${writes % 100}`, key: `key-${writes % 200_000}`, value })
    }
    await ns.apply({ index: ++index, term: 1, writes: batch })
  }
  const elapsed = (performance.now() - start) / 1000
  await ns.close()
  return writes / elapsed
}

async function snapshots(dir: string, totalMb: number, say: (line: string) => void) {
  const src = await openNamespaceStore({ dataDir: join(dir, 'src'), name: 'big' })
  const value = new Uint8Array(64 * 1024)
  for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff
  const writes = (totalMb * MB) / value.length
  for (let w = 0, index = 1; w < writes; index++) {
    const batch = []
    for (let i = 0; i < 64 && w < writes; i++, w++)
      batch.push({ actor: `actor-${w % 200}`, key: `k${w}`, value })
    await src.apply({ index, term: 1, writes: batch })
  }
  const t0 = performance.now()
  const snap = await createNamespaceSnapshot(src)
  const parts: string[] = []
  const t1 = performance.now()
  const dst = await openNamespaceStore({ dataDir: join(dir, 'dst'), name: 'big' })
  const t2 = performance.now()
  await installNamespaceSnapshot(dst, snap.meta, snap.chunks)
  const t3 = performance.now()
  // Creation is timed to the metadata (copy + SHA-256); reading the chunks is part of installing.
  const createS = (t1 - t0) / 1000
  const installS = (t3 - t2) / 1000
  parts.push(`snapshot of ${(snap.meta.bytes / MB).toFixed(0)} MB: create ${createS.toFixed(2)} s`)
  parts.push(`install ${installS.toFixed(2)} s`)
  say(parts.join(', '))
  await snap.discard()
  await src.close()
  await dst.close()
  return {
    mb: snap.meta.bytes / MB,
    createMbPerS: snap.meta.bytes / MB / createS,
    installMbPerS: snap.meta.bytes / MB / installS,
  }
}

const run: BenchGroup = async ({ quick, log: say }) => {
  const { dir, remove } = await tempDir('am-bench-storage-')
  const figures: BenchFigure[] = []
  try {
    const seconds = quick ? 0.5 : 2
    for (const batch of [1, 16, 256]) {
      const r = await logAppend(dir, batch, seconds)
      say(
        `log append batch ${batch}: ${r.entriesPerS.toFixed(0)} entries/s, ${r.fsyncsPerS.toFixed(0)} fsyncs/s`,
      )
      figures.push({
        key: `storage.log_append_entries_per_s_batch${batch}`,
        value: Math.round(r.entriesPerS),
        unit: 'entries/s',
        ...(batch === 256 ? { target: '>= 50000' } : {}),
        note: '256-byte entries, one group, one transaction per persist',
      })
      figures.push({
        key: `storage.log_fsyncs_per_s_batch${batch}`,
        value: Math.round(r.fsyncsPerS),
        unit: 'fsyncs/s',
        note: 'persist calls per second (one committed transaction each)',
      })
    }
    const applied = await applyWrites(dir, seconds)
    say(`apply: ${applied.toFixed(0)} writes/s`)
    figures.push({
      key: 'storage.apply_writes_per_s',
      value: Math.round(applied),
      unit: 'writes/s',
      target: '>= 100000',
      note: '1000 writes of 100 bytes per batch, 100 actors',
    })
    const s = await snapshots(dir, quick ? 20 : 200, say)
    const note = `${s.mb.toFixed(0)} MB namespace`
    figures.push({
      key: 'storage.snapshot_create_mb_per_s',
      value: Math.round(s.createMbPerS),
      unit: 'MB/s',
      target: '>= 100',
      note: `${note}; VACUUM INTO + SHA-256`,
    })
    figures.push({
      key: 'storage.snapshot_install_mb_per_s',
      value: Math.round(s.installMbPerS),
      unit: 'MB/s',
      target: '>= 100',
      note: `${note}; read chunks, write + fsync, verify SHA-256, rename, reopen`,
    })
    return figures
  } finally {
    await remove()
  }
}

export default run
