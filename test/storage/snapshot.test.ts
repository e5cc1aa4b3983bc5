import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createNamespaceSnapshot,
  installNamespaceSnapshot,
  type NamespaceStore,
  openNamespaceStore,
  StorageCorruptionError,
} from '../../storage/index.js'
import { seeded, stateDigest, tempDir } from './helpers.js'

const conf = { voters: ['n1', 'n2', 'n3'], learners: [] }

async function fill(s: NamespaceStore, seed: number, batches: number, startIndex = 1): Promise<string[]> {
  const rand = seeded(seed)
  const actors = ['a', 'b', 'c', 'd']
  for (let i = 0; i < batches; i++) {
    const writes = []
    for (let j = 0; j < 50; j++) {
      const value = rand(10) === 0 ? null : new Uint8Array(rand(2000)).fill(rand(256))
      writes.push({ actor: actors[rand(actors.length)]!, key: `k${rand(300)}`, value })
    }
    await s.apply({ index: startIndex + i, term: 1 + (i >> 3), writes, conf })
  }
  return actors
}

async function* none(): AsyncGenerator<Uint8Array> {}

describe('namespace snapshots', () => {
  let dir = ''
  let remove: () => Promise<void> = async () => {}
  const stores: NamespaceStore[] = []
  beforeEach(async () => {
    ;({ dir, remove } = await tempDir())
  })
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
    await remove()
  })
  const open = async (node: string, snapshotChunkBytesMax = 4096) => {
    const s = await openNamespaceStore({ dataDir: join(dir, node), name: 'room', snapshotChunkBytesMax })
    stores.push(s)
    return s
  }

  it('round-trips: a snapshot installed into another database gives an equal state digest', async () => {
    const seed = 1234
    const src = await open('src')
    const actors = await fill(src, seed, 40)
    await src.apply({
      index: 41,
      term: 6,
      writes: [],
      modules: [{ version: 1, hash: 'h', bytes: new Uint8Array([1, 2]), metadata: '{}' }],
    })
    const snap = await createNamespaceSnapshot(src)
    expect(snap.meta).toMatchObject({ namespace: 'room', index: 41, term: 6, conf })
    const sizes: number[] = []
    const chunks = (async function* () {
      for await (const c of snap.chunks) {
        sizes.push(c.byteLength)
        yield c
      }
    })()
    const dst = await open('dst')
    await fill(dst, seed + 1, 3) // different state that the snapshot replaces
    expect(await installNamespaceSnapshot(dst, snap.meta, chunks)).toBe(true)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4096)
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(snap.meta.bytes)
    expect(await stateDigest(dst, actors)).toBe(await stateDigest(src, actors))
    expect(dst.applied()).toEqual(src.applied())
    await dst.apply({
      index: 42,
      term: 6,
      writes: [{ actor: 'a', key: 'after', value: new Uint8Array([1]) }],
    })
    expect(await dst.get('a', 'after')).toEqual(new Uint8Array([1]))
  })

  it('leaves the database in its own synchronous mode after the copy (NORMAL by default)', async () => {
    const src = await open('src')
    await fill(src, 5, 3)
    const mode = async () => Number((await src.db().execute('PRAGMA synchronous')).rows[0]![0])
    const before = await mode()
    expect(before).toBe(1) // NORMAL
    const snap = await createNamespaceSnapshot(src)
    await snap.discard()
    expect(await mode()).toBe(before)
  })

  it('snapshots exactly the applied point even while batches keep arriving', async () => {
    const src = await open('src')
    await fill(src, 7, 5)
    const pending = fill(src, 8, 5, 6)
    const snap = await createNamespaceSnapshot(src)
    await pending
    const dst = await open('dst')
    await installNamespaceSnapshot(dst, snap.meta, snap.chunks)
    expect(dst.applied().index).toBe(snap.meta.index)
    expect(snap.meta.index).toBeGreaterThanOrEqual(5)
  })

  it('refuses a snapshot whose bytes do not match its checksum and leaves the live database untouched', async () => {
    const src = await open('src')
    const actors = await fill(src, 99, 10)
    const dst = await open('dst')
    await fill(dst, 100, 2)
    const before = await stateDigest(dst, actors)
    const snap = await createNamespaceSnapshot(src)
    const flipped = (async function* () {
      let n = 0
      for await (const c of snap.chunks) {
        if (n++ === 2) c[100] = c[100]! ^ 0x40
        yield c
      }
    })()
    await expect(installNamespaceSnapshot(dst, snap.meta, flipped)).rejects.toBeInstanceOf(
      StorageCorruptionError,
    )
    await expect(
      installNamespaceSnapshot(dst, { ...snap.meta, sha256: '0'.repeat(64) }, none()),
    ).rejects.toMatchObject({
      code: 'ACTORMESH_STORAGE_CORRUPT',
    })
    expect(await stateDigest(dst, actors)).toBe(before)
    expect(dst.applied().index).toBe(2)
  })

  it('keeps serving reads while a snapshot is installed, old state before and new state after', async () => {
    const src = await open('src')
    await src.apply({ index: 9, term: 2, writes: [{ actor: 'a', key: 'v', value: new Uint8Array([2]) }] })
    const dst = await open('dst')
    await dst.apply({ index: 1, term: 1, writes: [{ actor: 'a', key: 'v', value: new Uint8Array([1]) }] })
    const snap = await createNamespaceSnapshot(src)
    let done = false
    const install = installNamespaceSnapshot(dst, snap.meta, snap.chunks).finally(() => {
      done = true
    })
    const seen = new Set<number>()
    for (let reads = 0; !done && reads < 100_000; reads++) {
      seen.add((await dst.get('a', 'v'))![0]!)
      await new Promise((r) => setImmediate(r)) // let the install's file I/O run between reads
    }
    await install
    seen.add((await dst.get('a', 'v'))![0]!)
    expect([...seen].every((x) => x === 1 || x === 2)).toBe(true)
    expect(await dst.get('a', 'v')).toEqual(new Uint8Array([2]))
  })

  it('removes snapshot temp files a crash left behind when the namespace is opened', async () => {
    const src = await open('src')
    await fill(src, 3, 2)
    const snap = await createNamespaceSnapshot(src) // never read nor discarded: as if the process died
    await src.close()
    const { readdir, writeFile } = await import('node:fs/promises')
    const nsDir = join(dir, 'src', 'ns')
    await writeFile(join(nsDir, 'room.db.install-00ff.tmp'), 'partial')
    await writeFile(join(nsDir, 'other.db.install-00ff.tmp'), 'not ours')
    expect((await readdir(nsDir)).filter((f) => f.startsWith('room.db.') && f.endsWith('.tmp'))).toHaveLength(
      2,
    )
    await open('src')
    expect((await readdir(nsDir)).filter((f) => f.endsWith('.tmp'))).toEqual(['other.db.install-00ff.tmp'])
    expect(snap.meta.bytes).toBeGreaterThan(0)
  })

  it('skips a snapshot at or below the applied index and removes its temp file after reading', async () => {
    const src = await open('src')
    await fill(src, 5, 3)
    const snap = await createNamespaceSnapshot(src)
    const file = await readFile(src.path)
    expect(file.byteLength).toBeGreaterThan(0)
    expect(await installNamespaceSnapshot(src, snap.meta, snap.chunks)).toBe(false)
    await snap.discard()
    const again = await createNamespaceSnapshot(src)
    for await (const _ of again.chunks) {
      // drain
    }
    const { readdir } = await import('node:fs/promises')
    expect((await readdir(join(dir, 'src', 'ns'))).filter((f) => f.endsWith('.tmp'))).toEqual([])
  })
})
