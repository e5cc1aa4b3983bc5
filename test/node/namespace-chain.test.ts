import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Entry } from '../../consensus/index.js'
import { EntryType } from '../../consensus/index.js'
import {
  encodeNamespaceEntry,
  type NamespaceEntry,
  NamespaceStateMachine,
} from '../../node/namespace-group.js'
import { type NamespaceStore, openNamespaceStore } from '../../storage/index.js'

const dirs: string[] = []
const stores: NamespaceStore[] = []

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => {})
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function open(dataDir?: string, valueBytesMax?: number) {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'am-chain-')))
  if (!dataDir) dirs.push(dir)
  const store = await openNamespaceStore({
    dataDir: dir,
    name: 'ns',
    ...(valueBytesMax ? { limits: { valueBytesMax } } : {}),
  })
  stores.push(store)
  const applied: NamespaceEntry[][] = []
  const sm = await NamespaceStateMachine.open('ns', store, {
    applied: (_n, e) => applied.push(e.map((a) => a.entry)),
  })
  return { dir, store, sm, applied }
}

let index = 0
function entry(epoch: string, seq: number, base: number, value = 'v'): Entry {
  index++
  return {
    index,
    term: 1,
    type: EntryType.Normal,
    data: encodeNamespaceEntry({
      epoch,
      seq,
      base,
      writes: [{ actor: 'a', key: `${epoch}${seq}`, value: new TextEncoder().encode(value) }],
    }),
  }
}

async function keys(store: NamespaceStore): Promise<string[]> {
  return (await store.loadActor('a')).map(([k]) => k)
}

describe('the namespace entry chain', () => {
  it('voids every entry of a stint after a gap, and a new stint whose base is behind the chain', async () => {
    index = 0
    const { store, sm, applied } = await open()
    const batch = [entry('A', 1, 0), entry('A', 3, 0), entry('A', 4, 0)] // A2 was dropped
    await sm.apply(batch, 'ns', 3)
    expect(sm.outcome(1)).toEqual({ applied: true })
    expect(sm.outcome(2)).toMatchObject({ applied: false, reason: 'sequence' })
    expect(sm.outcome(3)).toMatchObject({ applied: false, reason: 'sequence' })
    // B read state at index 0, before A1 applied at index 1: computed without A1, so void.
    await sm.apply([entry('B', 1, 0)], 'ns', 4)
    expect(sm.outcome(4).applied).toBe(false)
    // C read state at index 4: after everything chained, so it starts a new run.
    await sm.apply([entry('C', 1, 4), entry('C', 2, 4)], 'ns', 6)
    expect([sm.outcome(5).applied, sm.outcome(6).applied]).toEqual([true, true])
    expect(await keys(store)).toEqual(['A1', 'C1', 'C2'])
    expect(applied.flat().map((e) => `${e.epoch}${e.seq}`)).toEqual(['A1', 'C1', 'C2'])
    expect(store.applied().index).toBe(6)
  })

  it('keeps the chain point across a restart', async () => {
    index = 0
    const first = await open()
    await first.sm.apply([entry('A', 1, 0), entry('A', 2, 0)], 'ns', 2)
    await first.store.close()
    const again = await open(first.dir)
    await again.sm.apply([entry('A', 4, 0), entry('A', 3, 0)], 'ns', 4)
    expect([again.sm.outcome(3).applied, again.sm.outcome(4).applied]).toEqual([false, true])
    expect(await keys(again.store)).toEqual(['A1', 'A2', 'A3'])
  })

  it('skips an entry the store refuses by its limits, identically, without stopping the group', async () => {
    index = 0
    const { store, sm } = await open(undefined, 64)
    await sm.apply([entry('A', 1, 0), entry('A', 2, 0, 'x'.repeat(100)), entry('A', 3, 0)], 'ns', 3)
    expect(sm.outcome(1).applied).toBe(true)
    expect(sm.outcome(2)).toMatchObject({ applied: false, reason: 'limit' })
    // A3 was computed on A2's writes, which never applied: it is void too.
    expect(sm.outcome(3)).toMatchObject({ applied: false, reason: 'sequence' })
    expect(await keys(store)).toEqual(['A1'])
    expect(store.applied().index).toBe(3)
  })

  it('skips a malformed entry instead of throwing', async () => {
    index = 0
    const { store, sm } = await open()
    await sm.apply([{ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }], 'ns', 1)
    expect(sm.outcome(1).applied).toBe(false)
    expect(store.applied().index).toBe(1)
  })
})
