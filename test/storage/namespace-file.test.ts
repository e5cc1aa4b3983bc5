import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createNamespaceSnapshot,
  inspectNamespaceFile,
  type NamespaceStore,
  openNamespaceStore,
  openRaftLogStore,
  rebaseNamespaceFile,
  StorageCorruptionError,
  swapNamespaceFile,
} from '../../storage/index.js'
import { seeded, tempDir } from './helpers.js'

const SEED = Number(process.env.SEED ?? 77)
const conf = { voters: ['n1'], learners: [] }
const module1 = { version: 1, hash: 'a'.repeat(64), bytes: new Uint8Array([0, 97, 115, 109]), metadata: '{}' }

describe('namespace files outside a live store', () => {
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

  const open = async (node: string) => {
    const s = await openNamespaceStore({ dataDir: join(dir, node), name: 'room' })
    stores.push(s)
    return s
  }

  /** A copy of `store` (VACUUM INTO) written to `path`. */
  async function copyOf(store: NamespaceStore, path: string): Promise<void> {
    const snap = await createNamespaceSnapshot(store)
    const parts: Buffer[] = []
    for await (const c of snap.chunks) parts.push(Buffer.from(c))
    await writeFile(path, Buffer.concat(parts))
  }

  async function filled(node: string): Promise<NamespaceStore> {
    const s = await open(node)
    const rnd = seeded(SEED)
    for (let i = 1; i <= 20; i++) {
      const writes = Array.from({ length: 20 }, () => ({
        actor: `a${rnd(5)}`,
        key: `k${rnd(40)}`,
        value: new Uint8Array(rnd(300)).fill(rnd(256)),
      }))
      await s.apply({ index: i, term: 3, writes, conf, ...(i === 5 ? { modules: [module1] } : {}) })
    }
    return s
  }

  it('inspect describes a copy: applied point, state bytes and module hashes', async () => {
    const src = await filled('src')
    const path = join(dir, 'copy.db')
    await copyOf(src, path)
    const info = await inspectNamespaceFile(path)
    expect(info).toMatchObject({ namespace: 'room', index: 20, term: 3, conf })
    expect(info.stateBytes).toBe(await src.namespaceBytes())
    expect(info.modules).toEqual([{ version: 1, hash: module1.hash }])
  })

  it('inspect refuses a truncated copy, a flipped byte and a file that is not a namespace', async () => {
    const src = await filled('src')
    const path = join(dir, 'copy.db')
    await copyOf(src, path)
    const full = await readFile(path)
    await writeFile(join(dir, 'cut.db'), full.subarray(0, Math.floor(full.byteLength / 2)))
    await expect(inspectNamespaceFile(join(dir, 'cut.db'))).rejects.toBeInstanceOf(StorageCorruptionError)
    const raft = await openRaftLogStore({ path: join(dir, 'raft.db') })
    raft.open('g', conf)
    await raft.close()
    await expect(inspectNamespaceFile(join(dir, 'raft.db'))).rejects.toThrow(/schema/)
    await writeFile(join(dir, 'empty.db'), '')
    await expect(inspectNamespaceFile(join(dir, 'empty.db'))).rejects.toThrow(/no tables/)
  })

  it('rebase moves the applied point to any index, below the held one too, with writes in one transaction', async () => {
    const src = await filled('src')
    const path = join(dir, 'copy.db')
    await copyOf(src, path)
    const before = await inspectNamespaceFile(path)
    const value = new Uint8Array([1, 2, 3])
    await rebaseNamespaceFile(path, 'room', { index: 7, term: 9, conf: { voters: ['x'], learners: [] } }, [
      { actor: '\u0000ns', key: 'seq', value },
    ])
    const after = await inspectNamespaceFile(path)
    expect(after).toMatchObject({ index: 7, term: 9, conf: { voters: ['x'], learners: [] } })
    expect(after.stateBytes).toBe(before.stateBytes + 'seq'.length + value.byteLength)
    await expect(rebaseNamespaceFile(path, 'other', { index: 8, term: 9, conf }, [])).rejects.toThrow(
      /holds namespace 'room'/,
    )
  })

  it('swap replaces a live store atomically and only forward', async () => {
    const src = await filled('src')
    const dst = await open('dst')
    await dst.apply({
      index: 30,
      term: 4,
      writes: [{ actor: 'z', key: 'only-here', value: new Uint8Array([1]) }],
    })
    const staged = `${dst.path}.stage-1`
    await copyOf(src, staged)
    await rebaseNamespaceFile(staged, 'room', { index: 31, term: 4, conf }, [])
    // Not forward: refused, both files stay.
    expect(await swapNamespaceFile(dst, staged, { index: 30, term: 4 })).toBe(false)
    expect((await stat(staged)).size).toBeGreaterThan(0)
    expect(await swapNamespaceFile(dst, staged, { index: 31, term: 4 })).toBe(true)
    expect(dst.applied()).toMatchObject({ index: 31, term: 4 })
    expect(await dst.get('z', 'only-here')).toBeUndefined()
    // Sizes the store remembered from the replaced file are gone: 'only-here' is new again.
    await dst.apply({
      index: 32,
      term: 4,
      writes: [{ actor: 'z', key: 'only-here', value: new Uint8Array(5) }],
    })
    expect(await dst.namespaceBytes()).toBe((await src.namespaceBytes()) + 'only-here'.length + 5)
    expect(await dst.actorBytes('z')).toBe('only-here'.length + 5)
    for (const actor of ['a0', 'a1', 'a2', 'a3', 'a4'])
      expect(await dst.loadActor(actor)).toEqual(await src.loadActor(actor))
    await expect(stat(staged)).rejects.toThrow()
    // The swapped-in file survives a reopen.
    await dst.close()
    stores.splice(stores.indexOf(dst), 1)
    const again = await open('dst')
    expect(again.applied().index).toBe(32)
  })
})
