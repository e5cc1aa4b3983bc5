import Database from 'libsql'
import { afterEach, beforeEach, describe, expect, it, onTestFailed } from 'vitest'
import {
  type NamespaceStore,
  openNamespaceStore,
  StorageClosedError,
  StorageLimitError,
  StorageQuotaError,
  validateNamespaceName,
} from '../../storage/index.js'
import { seeded, tempDir } from './helpers.js'

const enc = new TextEncoder()
const v = (s: string) => enc.encode(s)
const conf = { voters: ['n1', 'n2'], learners: ['n3'] }

describe('namespace store', () => {
  let dir = ''
  let remove: () => Promise<void> = async () => {}
  let store: NamespaceStore | undefined
  beforeEach(async () => {
    ;({ dir, remove } = await tempDir())
  })
  afterEach(async () => {
    await store?.close()
    store = undefined
    await remove()
  })
  const open = async (limits = {}) => {
    await store?.close()
    store = await openNamespaceStore({ dataDir: dir, name: 'chat', limits })
    return store
  }

  it('stores, reads, overwrites and deletes actor keys', async () => {
    const s = await open()
    expect(await s.apply({ index: 1, term: 1, writes: [{ actor: 'a', key: 'x', value: v('1') }] })).toBe(true)
    await s.apply({
      index: 2,
      term: 1,
      writes: [
        { actor: 'a', key: 'x', value: v('22') },
        { actor: 'a', key: 'y', value: new Uint8Array() },
        { actor: 'b', key: 'x', value: v('b') },
      ],
    })
    expect(await s.get('a', 'x')).toEqual(v('22'))
    expect(await s.get('a', 'y')).toEqual(new Uint8Array())
    expect(await s.get('a', 'z')).toBeUndefined()
    await s.apply({ index: 3, term: 2, writes: [{ actor: 'a', key: 'x', value: null }] })
    expect(await s.loadActor('a')).toEqual([['y', new Uint8Array()]])
    expect(s.applied()).toEqual({ index: 3, term: 2, conf: { voters: [], learners: [] } })
  })

  it('applies each batch exactly once across a reopen and keeps the applied point', async () => {
    let s = await open()
    await s.apply({ index: 5, term: 1, conf, writes: [{ actor: 'a', key: 'n', value: v('5') }] })
    await s.apply({ index: 6, term: 1, writes: [{ actor: 'a', key: 'n', value: v('6') }] })
    s = await open()
    expect(s.applied()).toEqual({ index: 6, term: 1, conf })
    expect(await s.apply({ index: 6, term: 1, writes: [{ actor: 'a', key: 'n', value: v('again') }] })).toBe(
      false,
    )
    expect(await s.apply({ index: 4, term: 1, writes: [{ actor: 'a', key: 'n', value: v('old') }] })).toBe(
      false,
    )
    expect(await s.get('a', 'n')).toEqual(v('6'))
    expect(await s.apply({ index: 7, term: 2, writes: [{ actor: 'a', key: 'n', value: v('7') }] })).toBe(true)
    expect(await s.get('a', 'n')).toEqual(v('7'))
  })

  it('lists keys by prefix in pages of limit with a cursor', async () => {
    const s = await open()
    const writes = []
    for (let i = 0; i < 25; i++)
      writes.push({ actor: 'a', key: `p/${String(i).padStart(2, '0')}`, value: v(`${i}`) })
    writes.push({ actor: 'a', key: 'p0', value: v('-') }, { actor: 'a', key: 'o', value: v('-') })
    writes.push({ actor: 'b', key: 'p/xx', value: v('-') })
    await s.apply({ index: 1, term: 1, writes })
    const seen: string[] = []
    let after: string | undefined
    const sizes: number[] = []
    for (;;) {
      const page = await s.list('a', 'p/', { limit: 10, after })
      sizes.push(page.entries.length)
      seen.push(...page.entries.map(([k]) => k))
      if (!page.cursor) break
      after = page.cursor
    }
    expect(sizes).toEqual([10, 10, 5])
    expect(seen).toEqual(writes.slice(0, 25).map((w) => w.key))
    expect((await s.list('a', '', { limit: 100 })).entries.map(([k]) => k)).toEqual(['o', ...seen, 'p0'])
    expect((await s.list('a', 'p/2', { limit: 3 })).entries.map(([k]) => k)).toEqual(['p/20', 'p/21', 'p/22'])
    await expect(s.list('a', '', { limit: 0 })).rejects.toThrow(RangeError)
  })

  it('lists keys by a prefix that ends in a non-ASCII character', async () => {
    const s = await open()
    const keys = ['é', 'éa', 'é\u{1F600}', 'ê', 'e']
    await s.apply({ index: 1, term: 1, writes: keys.map((key) => ({ actor: 'a', key, value: v(key) })) })
    expect((await s.list('a', 'é', { limit: 10 })).entries.map(([k]) => k)).toEqual(['é', 'éa', 'é\u{1F600}'])
  })

  it('keeps per-actor and namespace byte counts incrementally through sets, overwrites and deletes', async () => {
    const s = await open()
    await s.apply({
      index: 1,
      term: 1,
      writes: [
        { actor: 'a', key: 'k1', value: new Uint8Array(10) },
        { actor: 'a', key: 'ключ', value: new Uint8Array(5) },
        { actor: 'b', key: 'k', value: new Uint8Array(100) },
      ],
    })
    expect(await s.actorBytes('a')).toBe(2 + 10 + 8 + 5)
    expect(await s.actorBytes('b')).toBe(101)
    await s.apply({
      index: 2,
      term: 1,
      writes: [
        { actor: 'a', key: 'k1', value: new Uint8Array(3) },
        { actor: 'b', key: 'k', value: null },
      ],
    })
    expect(await s.actorBytes('a')).toBe(2 + 3 + 8 + 5)
    expect(await s.actorBytes('b')).toBe(0)
    expect(await s.namespaceBytes()).toBe(18)
  })

  it('accounts bytes and refuses over-quota batches the same with its size cache, a tiny one, or none', async () => {
    const seed = 0x5ca1e
    onTestFailed(() => console.error(`size cache test failed with seed ${seed}`))
    const rand = seeded(seed)
    const limits = { actorStateBytesMax: 40 }
    const stores = await Promise.all(
      [4096, 2, 0].map((sizeCacheEntriesMax, i) =>
        openNamespaceStore({ dataDir: `${dir}/s${i}`, name: 'chat', limits, sizeCacheEntriesMax }),
      ),
    )
    try {
      const actors = ['a', 'b', 'c']
      const keys = ['', 'k', 'key2']
      for (let index = 1; index <= 300; index++) {
        const writes = Array.from({ length: 1 + rand(4) }, () => ({
          actor: actors[rand(actors.length)]!,
          key: keys[rand(keys.length)]!,
          value: rand(3) === 0 ? null : new Uint8Array(rand(14)),
        }))
        const outcomes = await Promise.all(
          stores.map((st) =>
            st.apply({ index, term: 1, writes }).then(
              () => 'applied',
              (e: unknown) => (e instanceof StorageQuotaError ? 'refused' : `error ${String(e)}`),
            ),
          ),
        )
        expect(new Set(outcomes).size, `batch ${index}: ${outcomes}`).toBe(1)
        if (outcomes[0] === 'refused')
          await Promise.all(stores.map((st) => st.apply({ index, term: 1, writes: [] })))
        const views = await Promise.all(
          stores.map(async (st) => [
            await st.namespaceBytes(),
            ...(await Promise.all(actors.map((a) => st.actorBytes(a)))),
          ]),
        )
        expect(views[1], `batch ${index}`).toEqual(views[2])
        expect(views[0], `batch ${index}`).toEqual(views[2])
        // The uncached store's figures are the database's own.
        const held = await Promise.all(
          actors.map(async (a) =>
            (await stores[2]!.loadActor(a)).reduce(
              (n, [k, val]) => n + Buffer.byteLength(k) + val.byteLength,
              0,
            ),
          ),
        )
        expect(views[2]!.slice(1), `batch ${index}`).toEqual(held)
      }
    } finally {
      await Promise.all(stores.map((st) => st.close()))
    }
  })

  it('commits applied batches together: reads see them at once, another connection after applyCommitMs or sync', async () => {
    const s = (store = await openNamespaceStore({ dataDir: dir, name: 'chat', applyCommitMs: 60_000 }))
    const other = new Database(s.path, { readonly: true })
    const committed = () =>
      Number(
        (other.prepare('SELECT applied_index FROM ns_meta').get() as { applied_index: number }).applied_index,
      )
    try {
      for (let index = 1; index <= 3; index++)
        await s.apply({ index, term: 1, writes: [{ actor: 'a', key: 'n', value: v(String(index)) }] })
      expect(await s.get('a', 'n')).toEqual(v('3'))
      expect(s.applied().index).toBe(3)
      expect(committed()).toBe(0)
      expect(await s.sync()).toMatchObject({ index: 3 })
      expect(committed()).toBe(3)
      // The window: a batch alone is committed by the timer.
      const quick = await openNamespaceStore({ dataDir: `${dir}/q`, name: 'chat', applyCommitMs: 20 })
      const q = new Database(quick.path, { readonly: true })
      try {
        await quick.apply({ index: 7, term: 1, writes: [{ actor: 'a', key: 'n', value: v('7') }] })
        const at = () =>
          Number(
            (q.prepare('SELECT applied_index FROM ns_meta').get() as { applied_index: number }).applied_index,
          )
        for (let i = 0; i < 3000 && at() !== 7; i++) await new Promise((r) => setTimeout(r, 10))
        expect(at()).toBe(7)
      } finally {
        q.close()
        await quick.close()
      }
      // 0: every apply commits.
      const each = await openNamespaceStore({ dataDir: `${dir}/e`, name: 'chat', applyCommitMs: 0 })
      const e = new Database(each.path, { readonly: true })
      try {
        await each.apply({ index: 2, term: 1, writes: [] })
        expect(
          Number(
            (e.prepare('SELECT applied_index FROM ns_meta').get() as { applied_index: number }).applied_index,
          ),
        ).toBe(2)
      } finally {
        e.close()
        await each.close()
      }
    } finally {
      other.close()
    }
  })

  it('keeps the batches before a refused one when they wait in the same open transaction', async () => {
    const s = (store = await openNamespaceStore({
      dataDir: dir,
      name: 'chat',
      applyCommitMs: 60_000,
      limits: { actorStateBytesMax: 10 },
    }))
    await s.apply({ index: 1, term: 1, writes: [{ actor: 'a', key: 'k', value: v('12345') }] })
    await expect(
      s.apply({ index: 2, term: 1, writes: [{ actor: 'a', key: 'j', value: v('1234567') }] }),
    ).rejects.toBeInstanceOf(StorageQuotaError)
    await s.apply({ index: 2, term: 1, writes: [{ actor: 'b', key: 'k', value: v('1') }] })
    await s.close()
    const again = (store = await openNamespaceStore({ dataDir: dir, name: 'chat' }))
    expect(again.applied().index).toBe(2)
    expect(await again.loadActor('a')).toEqual([['k', v('12345')]])
    expect(await again.actorBytes('a')).toBe(6)
    expect(await again.get('b', 'k')).toEqual(v('1'))
  })

  it('rolls back only the batch whose statement failed, inside the open transaction, and closes cleanly after', async () => {
    // A module without metadata passes apply's checks and fails on the table's NOT NULL: an SQL
    // error after the batch's writes ran.
    const bad = {
      version: 1,
      hash: 'h',
      bytes: new Uint8Array([0]),
      metadata: undefined as unknown as string,
    }
    let s = (store = await openNamespaceStore({ dataDir: dir, name: 'chat', applyCommitMs: 60_000 }))
    await expect(
      s.apply({ index: 1, term: 1, writes: [{ actor: 'x', key: 'k', value: v('x') }], modules: [bad] }),
    ).rejects.toThrow()
    await s.close() // the refused first batch left an empty transaction open: it must not get in the way
    s = store = await openNamespaceStore({ dataDir: dir, name: 'chat', applyCommitMs: 60_000 })
    expect(s.applied().index).toBe(0)
    await s.apply({ index: 1, term: 1, writes: [{ actor: 'a', key: 'k', value: v('a') }] })
    await expect(
      s.apply({ index: 2, term: 1, writes: [{ actor: 'b', key: 'k', value: v('b') }], modules: [bad] }),
    ).rejects.toThrow()
    expect(s.applied().index).toBe(1)
    await s.apply({ index: 2, term: 1, writes: [{ actor: 'c', key: 'k', value: v('c') }] })
    await s.close()
    s = store = await openNamespaceStore({ dataDir: dir, name: 'chat' })
    expect(s.applied().index).toBe(2)
    expect([
      await s.get('a', 'k'),
      await s.get('b', 'k'),
      await s.get('c', 'k'),
      await s.get('x', 'k'),
    ]).toEqual([v('a'), undefined, v('c'), undefined])
    expect(await s.namespaceBytes()).toBe(4)
  })

  it('rejects keys, values and actor ids over their limits with a typed error naming the limit', async () => {
    const s = await open({ keyBytesMax: 8, valueBytesMax: 16, actorIdBytesMax: 4 })
    const attempt = (actor: string, key: string, size: number) =>
      s.apply({ index: 1, term: 1, writes: [{ actor, key, value: new Uint8Array(size) }] })
    await expect(attempt('a', 'ééééé', 1)).rejects.toMatchObject({ limit: 'keyBytesMax' })
    await expect(attempt('a', 'k', 17)).rejects.toBeInstanceOf(StorageLimitError)
    await expect(attempt('a', 'k', 17)).rejects.toMatchObject({
      limit: 'valueBytesMax',
      code: 'ACTORMESH_STORAGE_LIMIT',
    })
    await expect(attempt('actor', 'k', 1)).rejects.toMatchObject({ limit: 'actorIdBytesMax' })
    await expect(attempt('a', '\uD800', 1)).rejects.toThrow(TypeError)
    expect(s.applied().index).toBe(0)
    await expect(attempt('a', 'kkkkkkkk', 16)).resolves.toBe(true)
  })

  it('refuses a whole batch that takes an actor over actorStateBytesMax and writes nothing', async () => {
    const s = await open({ actorStateBytesMax: 100 })
    await s.apply({ index: 1, term: 1, writes: [{ actor: 'a', key: 'k', value: new Uint8Array(50) }] })
    const over = s.apply({
      index: 2,
      term: 1,
      writes: [
        { actor: 'b', key: 'k', value: new Uint8Array(10) },
        { actor: 'a', key: 'k2', value: new Uint8Array(60) },
      ],
    })
    await expect(over).rejects.toBeInstanceOf(StorageQuotaError)
    await expect(over).rejects.toMatchObject({ limit: 'actorStateBytesMax', actor: 'a' })
    expect(s.applied().index).toBe(1)
    expect(await s.get('b', 'k')).toBeUndefined()
    expect(await s.actorBytes('a')).toBe(51)
    // shrinking one key while growing another stays within the quota
    await s.apply({
      index: 2,
      term: 1,
      writes: [
        { actor: 'a', key: 'k', value: new Uint8Array(10) },
        { actor: 'a', key: 'k2', value: new Uint8Array(60) },
      ],
    })
    expect(await s.actorBytes('a')).toBe(11 + 62)
  })

  it('stores deployed modules with the applied batch', async () => {
    const s = await open()
    const mod = {
      version: 1,
      hash: 'ab'.repeat(32),
      bytes: new Uint8Array([0, 97, 115, 109]),
      metadata: '{"a":1}',
    }
    await s.apply({ index: 1, term: 1, writes: [], modules: [mod] })
    await open()
    expect(await store!.modules()).toEqual([mod])
  })

  it('rejects calls after close with StorageClosedError and calls with an aborted signal', async () => {
    const s = await open()
    const aborted = AbortSignal.abort()
    await expect(s.apply({ index: 1, term: 1, writes: [] }, { signal: aborted })).rejects.toThrow(/abort/i)
    await expect(s.get('a', 'k', { signal: aborted })).rejects.toThrow(/abort/i)
    await s.close()
    await expect(s.get('a', 'k')).rejects.toBeInstanceOf(StorageClosedError)
    await expect(s.apply({ index: 1, term: 1, writes: [] })).rejects.toMatchObject({
      code: 'ACTORMESH_STORAGE_CLOSED',
    })
    store = undefined
  })

  it('refuses namespace names with separators, dots, control characters or upper case', async () => {
    for (const bad of [
      '',
      '../x',
      'a/b',
      'a\\b',
      '..',
      '.',
      'A',
      'a\0',
      'a\n',
      'a.b',
      'x'.repeat(64),
      '__x',
      '-a',
    ]) {
      expect(() => validateNamespaceName(bad), bad).toThrow(RangeError)
      await expect(openNamespaceStore({ dataDir: dir, name: bad })).rejects.toThrow(RangeError)
    }
    for (const good of ['chat', '_system', 'a-b_c', '0', 'x'.repeat(63)]) validateNamespaceName(good)
  })
})
