import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createNamespaceSnapshot,
  installNamespaceSnapshot,
  openNamespaceStore,
  openRaftLogStore,
  StorageKeyError,
} from '../../storage/index.js'
import { tempDir } from './helpers.js'

const MARKER = 'PLAINTEXT-MARKER-7f3a9c'
const marker = new TextEncoder().encode(MARKER)

/** Whether the marker appears in the database file or its WAL. */
function rawContains(path: string): boolean {
  return [path, `${path}-wal`].some((p) => existsSync(p) && readFileSync(p).includes(MARKER))
}

describe('encryption at rest', () => {
  let dir = ''
  let remove: () => Promise<void> = async () => {}
  beforeEach(async () => {
    ;({ dir, remove } = await tempDir())
  })
  afterEach(() => remove())

  async function writeRaft(encryptionKey?: string): Promise<string> {
    const path = join(dir, 'raft.db')
    const store = await openRaftLogStore({ path, encryptionKey })
    store.open('g', { voters: ['n1'], learners: [] })
    await store.persist([{ group: 'g', entries: [{ index: 1, term: 1, type: 0, data: marker }] }])
    await store.close()
    return path
  }

  it('leaves raft.db values readable in the raw file when no key is given (the control)', async () => {
    expect(rawContains(await writeRaft())).toBe(true)
  })

  it('keeps raft.db values out of the raw file with a key and reads them back with it', async () => {
    const path = await writeRaft('correct horse battery staple')
    expect(rawContains(path)).toBe(false)
    const store = await openRaftLogStore({ path, encryptionKey: 'correct horse battery staple' })
    expect(store.open('g').entries(1, 2, 1e9)[0]!.data).toEqual(marker)
    await store.close()
  })

  it('refuses to open an encrypted raft.db without the key or with a wrong key, with a typed error', async () => {
    const path = await writeRaft('k1')
    await expect(openRaftLogStore({ path })).rejects.toBeInstanceOf(StorageKeyError)
    await expect(openRaftLogStore({ path })).rejects.toMatchObject({ code: 'ACTORMESH_STORAGE_KEY' })
    await expect(openRaftLogStore({ path, encryptionKey: 'k2' })).rejects.toThrow(/encryption key is wrong/)
  })

  it('encrypts namespace databases and their snapshots with the same key', async () => {
    const key = 'ns-key'
    const src = await openNamespaceStore({ dataDir: join(dir, 'a'), name: 'ns', encryptionKey: key })
    await src.apply({ index: 1, term: 1, writes: [{ actor: 'x', key: 'k', value: marker }] })
    const snap = await createNamespaceSnapshot(src)
    const parts: Uint8Array[] = []
    for await (const c of snap.chunks) parts.push(c)
    expect(Buffer.concat(parts).includes(MARKER)).toBe(false)
    await src.close()
    expect(rawContains(src.path)).toBe(false)
    await expect(openNamespaceStore({ dataDir: join(dir, 'a'), name: 'ns' })).rejects.toBeInstanceOf(
      StorageKeyError,
    )
    const dst = await openNamespaceStore({ dataDir: join(dir, 'b'), name: 'ns', encryptionKey: key })
    const chunks = (async function* () {
      yield* parts
    })()
    expect(await installNamespaceSnapshot(dst, snap.meta, chunks)).toBe(true)
    expect(await dst.get('x', 'k')).toEqual(marker)
    await dst.close()
  })
})
