import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Entry } from '../../consensus/index.js'
import { openNamespaceStore, openRaftLogStore, StorageCorruptionError } from '../../storage/index.js'
import { seeded, tempDir } from './helpers.js'

const MARKER = 'ENTRY-PAYLOAD-MARKER'
const enc = new TextEncoder()

function entries(n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i + 1,
    term: 1 + (i >> 4),
    type: 0 as const,
    data: enc.encode(`${MARKER}-${i}-${'x'.repeat(i % 50)}`),
  }))
}

function flipAt(path: string, offset: number, mask = 0x10): void {
  const buf = readFileSync(path)
  buf[offset] = buf[offset]! ^ mask
  writeFileSync(path, buf)
}

/** What a reopened raft.db holds, as plain data (to compare with what was written). */
async function raftContent(path: string): Promise<string> {
  const store = await openRaftLogStore({ path })
  try {
    const out = store.groups().map((g) => {
      const v = store.open(g)
      return { g, state: v.initialState(), entries: v.entries(v.firstIndex(), v.lastIndex() + 1, 1e12) }
    })
    return JSON.stringify(out, (_k, val) =>
      val instanceof Uint8Array ? Buffer.from(val).toString('hex') : val,
    )
  } finally {
    await store.close()
  }
}

describe('corruption', () => {
  let dir = ''
  let remove: () => Promise<void> = async () => {}
  beforeEach(async () => {
    ;({ dir, remove } = await tempDir())
  })
  afterEach(() => remove())

  async function raftFile(): Promise<string> {
    const path = join(dir, 'raft.db')
    const store = await openRaftLogStore({ path })
    store.open('g1', { voters: ['a', 'b'], learners: [] })
    store.open('g2', { voters: ['a'], learners: [] })
    await store.persist([
      { group: 'g1', entries: entries(200), hardState: { term: 13, vote: 'a', commit: 150 } },
      { group: 'g2', entries: entries(20), hardState: { term: 2, vote: 'b', commit: 20 } },
    ])
    await store.close()
    return path
  }

  it('refuses raft.db with a flipped byte inside an entry with StorageCorruptionError', async () => {
    const path = await raftFile()
    const at = readFileSync(path).indexOf(`${MARKER}-77-`)
    expect(at).toBeGreaterThan(0)
    flipAt(path, at + 3)
    await expect(openRaftLogStore({ path })).rejects.toBeInstanceOf(StorageCorruptionError)
    await expect(openRaftLogStore({ path })).rejects.toMatchObject({ code: 'ACTORMESH_STORAGE_CORRUPT' })
  })

  it('refuses a truncated raft.db with StorageCorruptionError', async () => {
    const path = await raftFile()
    const size = readFileSync(path).byteLength
    truncateSync(path, Math.floor(size / 2))
    await expect(openRaftLogStore({ path })).rejects.toBeInstanceOf(StorageCorruptionError)
  })

  it('reads raft.db with a byte flipped at any seeded offset either exactly as written or not at all', async () => {
    const seed = Number(process.env.STORAGE_SEED ?? Date.now() % 100_000)
    const rand = seeded(seed)
    const path = await raftFile()
    const pristine = join(dir, 'pristine.db')
    copyFileSync(path, pristine)
    const expected = await raftContent(path)
    copyFileSync(pristine, path)
    const size = readFileSync(path).byteLength
    const outcomes = { same: 0, refused: 0 }
    for (let trial = 0; trial < 40; trial++) {
      copyFileSync(pristine, path)
      const offset = 100 + rand(size - 100) // past the 100-byte header: see docs/storage.md
      flipAt(path, offset, 1 << rand(8))
      try {
        const got = await raftContent(path)
        expect(got, `seed ${seed} trial ${trial} offset ${offset}: read garbage`).toBe(expected)
        outcomes.same++
      } catch (error) {
        expect(error, `seed ${seed} trial ${trial} offset ${offset}`).toBeInstanceOf(StorageCorruptionError)
        outcomes.refused++
      }
    }
    expect(outcomes.same + outcomes.refused).toBe(40)
  })

  async function nsFile(): Promise<{ dataDir: string; path: string }> {
    const dataDir = join(dir, 'node')
    const s = await openNamespaceStore({ dataDir, name: 'ns' })
    const writes = Array.from({ length: 300 }, (_, i) => ({
      actor: `actor-${i % 7}`,
      key: `key-${i}`,
      value: enc.encode(`${MARKER}-${i}-${'v'.repeat(i % 90)}`),
    }))
    await s.apply({ index: 1, term: 1, writes })
    await s.close()
    return { dataDir, path: s.path }
  }

  it('refuses a namespace value with a flipped byte with StorageCorruptionError on read', async () => {
    const { dataDir, path } = await nsFile()
    const at = readFileSync(path).indexOf(`${MARKER}-123-`)
    flipAt(path, at + 5)
    const s = await openNamespaceStore({ dataDir, name: 'ns' })
    await expect(s.get('actor-4', 'key-123')).rejects.toBeInstanceOf(StorageCorruptionError)
    await expect(s.loadActor('actor-4')).rejects.toBeInstanceOf(StorageCorruptionError)
    expect(await s.get('actor-5', 'key-124')).toBeDefined()
    await s.close()
  })

  it('refuses a truncated namespace database with StorageCorruptionError on open', async () => {
    const { dataDir, path } = await nsFile()
    truncateSync(path, Math.floor(readFileSync(path).byteLength / 3))
    await expect(openNamespaceStore({ dataDir, name: 'ns' })).rejects.toBeInstanceOf(StorageCorruptionError)
  })

  it('reads a namespace database with a byte flipped at any seeded offset exactly or not at all', async () => {
    const seed = Number(process.env.STORAGE_SEED ?? (Date.now() >> 3) % 100_000)
    const rand = seeded(seed)
    const { dataDir, path } = await nsFile()
    const pristine = join(dir, 'ns-pristine.db')
    copyFileSync(path, pristine)
    const read = async () => {
      const s = await openNamespaceStore({ dataDir, name: 'ns' })
      try {
        const all = []
        // byte counters are not checksummed (docs/storage.md): only keys, values and the applied point
        for (let a = 0; a < 7; a++) all.push(await s.loadActor(`actor-${a}`))
        all.push(s.applied())
        return JSON.stringify(all, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))
      } finally {
        await s.close()
      }
    }
    const expected = await read()
    const size = readFileSync(pristine).byteLength
    for (let trial = 0; trial < 30; trial++) {
      copyFileSync(pristine, path)
      const offset = 100 + rand(size - 100)
      flipAt(path, offset, 1 << rand(8))
      try {
        const got = await read()
        expect(got, `seed ${seed} trial ${trial} offset ${offset}: read garbage`).toBe(expected)
      } catch (error) {
        expect(error, `seed ${seed} trial ${trial} offset ${offset}`).toBeInstanceOf(StorageCorruptionError)
      }
    }
  })
})
