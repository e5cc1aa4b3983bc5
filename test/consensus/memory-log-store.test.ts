import { describe, expect, it } from 'vitest'
import { MemoryLogStore } from '../../consensus/index.js'
import { logStoreCompliance } from './log-store-compliance.js'
import { makeEntries } from './storage-compliance.js'

logStoreCompliance('MemoryLogStore', async () => ({
  open: async () => new MemoryLogStore(),
  durable: false,
  cleanup: async () => {},
}))

describe('MemoryLogStore', () => {
  it('counts one persist per batch however many groups it holds', async () => {
    const s = new MemoryLogStore()
    await s.persist([
      { group: 'a', entries: makeEntries(1, 3, 1) },
      { group: 'b', entries: makeEntries(1, 3, 1) },
    ])
    await s.persist([{ group: 'a', entries: makeEntries(3, 4, 1) }])
    expect(s.persistCount).toBe(2)
  })
})
