import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { type Entry, type LogStore, MemoryLogStore, type Storage } from '../../consensus/index.js'
import { openRaftLogStore, StorageClosedError } from '../../storage/index.js'
import { logStoreCompliance } from '../consensus/log-store-compliance.js'
import { seeded, tempDir } from './helpers.js'

logStoreCompliance('LibSQL raft.db', async () => {
  const { dir, remove } = await tempDir()
  return { open: () => openRaftLogStore({ path: join(dir, 'raft.db') }), durable: true, cleanup: remove }
})

const conf = { voters: ['a', 'b', 'c'], learners: [] }

/** Everything a view shows, as comparable plain data. */
function dump(v: Storage) {
  const first = v.firstIndex()
  const last = v.lastIndex()
  return {
    state: v.initialState(),
    first,
    last,
    termAtOffset: v.term(first - 1),
    snapshot: v.snapshot().meta,
    entries: v.entries(first, last + 1, Number.POSITIVE_INFINITY).map((e) => [e.index, e.term, [...e.data]]),
  }
}

describe('raft.db', () => {
  it('rejects calls after close with StorageClosedError', async () => {
    const { dir, remove } = await tempDir()
    const store = await openRaftLogStore({ path: join(dir, 'raft.db') })
    await store.close()
    await expect(store.persist([])).rejects.toBeInstanceOf(StorageClosedError)
    expect(() => store.open('g')).toThrow(StorageClosedError)
    await store.close() // closing twice is harmless
    await remove()
  })

  it('fsyncs the WAL for a durable batch and not for one persisted with sync: false', async () => {
    const { dir, remove } = await tempDir()
    const store = await openRaftLogStore({ path: join(dir, 'raft.db') })
    store.open('g', conf)
    const entry = (index: number): Entry => ({ index, term: 1, type: 0, data: new Uint8Array([index]) })
    await store.persist([{ group: 'g', entries: [entry(1)], hardState: { term: 1, vote: 'a', commit: 0 } }])
    expect(store.syncCount).toBe(1)
    await store.persist([{ group: 'g', entries: [entry(2)], hardState: { term: 1, vote: 'a', commit: 1 } }], {
      sync: false,
    })
    expect(store.syncCount).toBe(1)
    expect(store.transactionCount).toBe(2)
    // Unsynced is still written: another connection (as after a process crash) sees it.
    const beside = await openRaftLogStore({ path: join(dir, 'raft.db') })
    expect(dump(beside.open('g'))).toEqual(dump(store.open('g')))
    await beside.close()
    await store.close()
    await remove()
  })

  it('keeps a commit-index-only batch in memory until the next transaction or close', async () => {
    const { dir, remove } = await tempDir()
    const path = join(dir, 'raft.db')
    const store = await openRaftLogStore({ path })
    store.open('g', conf)
    store.open('h', conf)
    const entry = (index: number): Entry => ({ index, term: 1, type: 0, data: new Uint8Array([index]) })
    const hs = (commit: number) => ({ term: 1, vote: 'a', commit })
    await store.persist([{ group: 'g', entries: [entry(1), entry(2)], hardState: hs(0) }])
    const transactions = store.transactionCount
    await store.persist([{ group: 'g', entries: [], hardState: hs(2) }], { sync: false })
    expect(store.transactionCount).toBe(transactions)
    expect(store.open('g').initialState().hardState).toEqual(hs(2))
    // What a crash now would leave: the older commit index, the same log.
    const stored = async () => {
      const beside = await openRaftLogStore({ path })
      const view = dump(beside.open('g'))
      await beside.close()
      return view
    }
    expect(await stored()).toEqual({
      ...dump(store.open('g')),
      state: { ...dump(store.open('g')).state, hardState: hs(0) },
    })
    // A term or vote is never deferred, nor is a batch that must be durable.
    await store.persist([{ group: 'g', entries: [], hardState: { term: 2, vote: '', commit: 2 } }], {
      sync: false,
    })
    expect(store.transactionCount).toBe(transactions + 1)
    expect((await stored()).state.hardState).toEqual({ term: 2, vote: '', commit: 2 })
    // The next transaction writes a deferred index along, even one of another group.
    await store.persist([{ group: 'g', entries: [entry(3)], hardState: { term: 2, vote: '', commit: 2 } }])
    await store.persist([{ group: 'g', entries: [], hardState: { term: 2, vote: '', commit: 3 } }], {
      sync: false,
    })
    expect((await stored()).state.hardState.commit).toBe(2)
    await store.persist([{ group: 'h', entries: [entry(1)], hardState: hs(0) }])
    expect((await stored()).state.hardState.commit).toBe(3)
    // And close writes what is still deferred.
    await store.persist([{ group: 'h', entries: [], hardState: hs(1) }], { sync: false })
    await store.close()
    const again = await openRaftLogStore({ path })
    expect(again.open('h').initialState().hardState).toEqual(hs(1))
    await again.close()
    await remove()
  })

  it('matches the in-memory model through random appends, conflicts, snapshots and reopens', async () => {
    const seed = Number(process.env.STORAGE_SEED ?? Date.now() % 1_000_000)
    const rand = seeded(seed)
    const { dir, remove } = await tempDir()
    const path = join(dir, 'raft.db')
    const model = new MemoryLogStore()
    let store: LogStore = await openRaftLogStore({ path })
    const groups = ['g1', 'g2', 'g3']
    let term = 1
    try {
      for (const g of groups) {
        model.open(g, conf)
        store.open(g, conf)
      }
      for (let step = 0; step < 300; step++) {
        const label = `seed ${seed} step ${step}`
        const g = groups[rand(groups.length)]!
        const v = model.open(g)
        const action = rand(20)
        if (action < 14) {
          // append, sometimes overwriting a suffix with a newer term (never at or below the
          // snapshot: those entries are committed)
          const floor = Math.max(v.firstIndex(), v.snapshot().meta.index + 1)
          const from = Math.max(floor, v.lastIndex() + 1 - (rand(4) === 0 ? rand(6) : 0))
          if (rand(5) === 0) term++
          const entries: Entry[] = Array.from({ length: 1 + rand(12) }, (_, i) => ({
            index: from + i,
            term,
            type: 0 as const,
            data: new Uint8Array([step & 0xff, i, rand(256)]),
          }))
          const last = entries[entries.length - 1]!.index
          const write = {
            group: g,
            entries,
            hardState: { term, vote: 'a', commit: Math.max(0, last - rand(3)) },
          }
          await model.persist([write])
          await store.persist([write])
        } else if (action < 17 && v.lastIndex() > v.snapshot().meta.index) {
          const at = v.snapshot().meta.index + 1 + rand(v.lastIndex() - v.snapshot().meta.index)
          const keep = rand(8)
          await model.snapshot(g, at, conf, new Uint8Array([at & 0xff]), keep)
          await store.snapshot(g, at, conf, new Uint8Array([at & 0xff]), keep)
        } else if (action < 18) {
          const at = v.lastIndex() + rand(10)
          const snapshot = { meta: { index: at, term, conf }, data: new Uint8Array([1, 2]) }
          const write = { group: g, snapshot, entries: [], hardState: { term, vote: 'b', commit: at } }
          await model.persist([write])
          await store.persist([write])
        } else {
          await store.close()
          store = await openRaftLogStore({ path })
        }
        for (const h of groups)
          expect(dump(store.open(h)), `${label} group ${h}`).toEqual(dump(model.open(h)))
      }
    } finally {
      await store.close()
      await remove()
    }
  })
})
