/**
 * The restore entry on one replica's state machine, over a real LibSQL store: entries before it
 * apply on the old state, the staged copy replaces the state at the entry's index with a new chain,
 * entries after it apply on the restored state; a replica without the staged copy pulls it.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Entry, Snapshot } from '../../consensus/index.js'
import { type RestoreCommand, stagedPath } from '../../node/backup/rollback.js'
import {
  encodeNamespaceEntry,
  type NamespaceEntry,
  NamespaceStateMachine,
} from '../../node/namespace-group.js'
import type { NamespaceSnapshotTransfer } from '../../node/namespace-snapshot.js'
import { createNamespaceSnapshot, type NamespaceStore, openNamespaceStore } from '../../storage/index.js'
import { tempDir } from '../storage/helpers.js'

let dir = ''
let remove: () => Promise<void> = async () => {}
const stores: NamespaceStore[] = []
beforeEach(async () => {
  ;({ dir, remove } = await tempDir('am-rollback-'))
})
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  await remove()
})

const v = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined)

function call(index: number, epoch: string, seq: number, base: number, key: string, value: string): Entry {
  const e: NamespaceEntry = { epoch, seq, base, writes: [{ actor: 'a', key, value: v(value) }] }
  return { index, term: 2, type: 0, data: encodeNamespaceEntry(e) }
}

function restoreEntry(index: number, command: RestoreCommand): Entry {
  const e: NamespaceEntry = { epoch: '', seq: 0, base: 0, writes: [], restore: command }
  return { index, term: 3, type: 0, data: encodeNamespaceEntry(e) }
}

async function open(node: string): Promise<NamespaceStore> {
  const s = await openNamespaceStore({ dataDir: join(dir, node), name: 'ledger' })
  stores.push(s)
  return s
}

/** Stages a copy of `source` beside `target` as `id`, as the staging flow leaves it. */
async function stage(source: NamespaceStore, target: NamespaceStore, id: string): Promise<RestoreCommand> {
  const snap = await createNamespaceSnapshot(source)
  const parts: Buffer[] = []
  for await (const c of snap.chunks) parts.push(Buffer.from(c))
  await writeFile(stagedPath(target, id), Buffer.concat(parts))
  return {
    id,
    bytes: snap.meta.bytes,
    sha256: snap.meta.sha256,
    fromIndex: snap.meta.index,
    fromTerm: snap.meta.term,
    staged: ['peer-a'],
  }
}

describe('restore entries', () => {
  it('replace the state at their index, between the entries before and after them', async () => {
    const archived = await open('archive')
    const archiveSm = await NamespaceStateMachine.open('ledger', archived)
    await archiveSm.apply([call(1, 'e0', 1, 0, 'k', 'archived')], 'ledger', 1)
    const live = await open('live')
    const restored: number[] = []
    const sm = await NamespaceStateMachine.open('ledger', live, {
      restored: (_ns, _m, index) => {
        restored.push(index)
      },
    })
    await sm.apply([call(1, 'e1', 1, 0, 'k', 'one'), call(2, 'e1', 2, 0, 'old-only', 'x')], 'ledger', 2)
    const command = await stage(archived, live, '0123456789abcdef')
    await sm.apply(
      [
        call(3, 'e1', 3, 0, 'k', 'before-restore'),
        restoreEntry(4, command),
        // The old stint continues after the restore: it was computed on the old state, so it is void.
        call(5, 'e1', 4, 0, 'k', 'stale-stint'),
        // A new stint based at or after the restore applies on the restored state.
        call(6, 'e2', 1, 4, 'k2', 'after'),
      ],
      'ledger',
      7,
    )
    expect(restored).toEqual([4])
    expect(live.applied().index).toBe(7)
    expect(text(await live.get('a', 'k'))).toBe('archived')
    expect(await live.get('a', 'old-only')).toBeUndefined()
    expect(text(await live.get('a', 'k2'))).toBe('after')
    expect(sm.outcome(5)).toMatchObject({ applied: false, reason: 'sequence' })
    expect(sm.outcome(6)).toEqual({ applied: true })
    expect(sm.outcome(3)).toEqual({ applied: true })
  })

  it('is applied once: replaying it after a restart changes nothing', async () => {
    const archived = await open('archive')
    await (await NamespaceStateMachine.open('ledger', archived)).apply(
      [call(1, 'e0', 1, 0, 'k', 'archived')],
      'ledger',
      1,
    )
    const live = await open('live')
    const sm = await NamespaceStateMachine.open('ledger', live)
    const command = await stage(archived, live, 'fedcba9876543210')
    await sm.apply([restoreEntry(1, command), call(2, 'e2', 1, 1, 'k', 'new')], 'ledger', 2)
    const again = await NamespaceStateMachine.open('ledger', live)
    await again.apply([restoreEntry(1, command), call(2, 'e2', 1, 1, 'k', 'new')], 'ledger', 2)
    expect(text(await live.get('a', 'k'))).toBe('new')
    expect(live.applied().index).toBe(2)
  })

  it('a second restore entry with the same id (a retried proposal) changes nothing', async () => {
    const archived = await open('archive')
    await (await NamespaceStateMachine.open('ledger', archived)).apply(
      [call(1, 'e0', 1, 0, 'k', 'archived')],
      'ledger',
      1,
    )
    const live = await open('live')
    const sm = await NamespaceStateMachine.open('ledger', live)
    const command = await stage(archived, live, '1111111111111111')
    await sm.apply(
      [restoreEntry(1, command), call(2, 'e2', 1, 1, 'k', 'new'), restoreEntry(3, command)],
      'ledger',
      3,
    )
    expect(text(await live.get('a', 'k'))).toBe('new')
    await sm.apply([call(4, 'e2', 2, 1, 'k', 'chain goes on')], 'ledger', 4)
    expect(text(await live.get('a', 'k'))).toBe('chain goes on')
  })

  it('without the staged copy, pulls the restored state from a replica that staged it', async () => {
    const live = await open('live')
    const peer = await open('peer')
    await peer.apply({ index: 9, term: 3, writes: [{ actor: 'a', key: 'k', value: v('from-peer') }] })
    const asked: Snapshot[] = []
    const transfer: NamespaceSnapshotTransfer = {
      self: 'me',
      async install(store, snapshot) {
        asked.push(snapshot)
        const snap = await createNamespaceSnapshot(peer)
        const { installNamespaceSnapshot } = await import('../../storage/index.js')
        await installNamespaceSnapshot(store, snap.meta, snap.chunks)
      },
    }
    const sm = await NamespaceStateMachine.open('ledger', live, {}, undefined, transfer)
    const command: RestoreCommand = {
      id: '00000000000000aa',
      bytes: 1,
      sha256: '0'.repeat(64),
      fromIndex: 1,
      fromTerm: 1,
      staged: ['peer-a', 'peer-b'],
    }
    await sm.apply([restoreEntry(4, command), call(5, 'x', 1, 4, 'k', 'skipped: already held')], 'ledger', 5)
    expect(asked.map((s) => s.meta)).toEqual([
      { index: 4, term: 3, conf: { voters: ['peer-a', 'peer-b'], learners: [] } },
    ])
    expect(live.applied().index).toBe(9)
    expect(text(await live.get('a', 'k'))).toBe('from-peer')
  })

  it('a malformed restore command is skipped like any malformed entry', async () => {
    const live = await open('live')
    const sm = await NamespaceStateMachine.open('ledger', live)
    const bad = { id: '../../etc', bytes: 1, sha256: 'x', fromIndex: 1, fromTerm: 1, staged: [] }
    await sm.apply([restoreEntry(1, bad as RestoreCommand)], 'ledger', 1)
    expect(sm.outcome(1)).toMatchObject({ applied: false, message: 'malformed entry' })
    expect(live.applied().index).toBe(1)
  })
})
