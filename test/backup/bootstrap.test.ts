/** `restore --data`: what the new data directory holds, and what it refuses. */
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ArchiveWriter } from '../../node/backup/archive.js'
import { restoreToDataDir } from '../../node/backup/bootstrap.js'
import { partName } from '../../node/backup/manifest.js'
import { decodeSnapshotMarker } from '../../node/namespace-snapshot.js'
import { loadOrCreatePeerKey } from '../../node/p2p/peer-key.js'
import { createNamespaceSnapshot, openNamespaceStore, openRaftLogStore } from '../../storage/index.js'
import { tempDir } from '../storage/helpers.js'
import { manifestOf } from './helpers.js'

let dir = ''
let remove: () => Promise<void> = async () => {}
beforeEach(async () => {
  ;({ dir, remove } = await tempDir('am-bootstrap-'))
})
afterEach(async () => {
  await remove()
})

const HASH = 'b'.repeat(64)

/** An archive of one namespace 'ledger' at index 42, term 5, with one module. */
async function archive(path: string, opts: { lieAboutIndex?: boolean } = {}): Promise<void> {
  const store = await openNamespaceStore({ dataDir: join(dir, 'src'), name: 'ledger' })
  await store.apply({
    index: 42,
    term: 5,
    writes: [{ actor: 'a', key: 'k', value: new Uint8Array([7]) }],
    modules: [{ version: 1, hash: HASH, bytes: new Uint8Array([0, 97, 115, 109]), metadata: '{}' }],
  })
  const snap = await createNamespaceSnapshot(store)
  const m = snap.meta
  // A lying archive says index 41 in its part header and manifest alike: only the database knows.
  const index = opts.lieAboutIndex ? 41 : m.index
  const part = {
    name: partName('ledger'),
    namespace: 'ledger',
    index,
    term: m.term,
    bytes: m.bytes,
    sha256: m.sha256,
  }
  const writer = await ArchiveWriter.create(path)
  await writer.addPart(part, snap.chunks)
  const manifest = manifestOf([part])
  manifest.namespaces[0]!.modules = [{ version: 1, hash: HASH }]
  manifest.namespaces[0]!.replicationFactor = 3
  await writer.finish(manifest).catch(async (e) => {
    await writer.abort()
    throw e
  })
  await store.close()
}

describe('restore into a new data directory', () => {
  it('writes a new identity, the database, and raft.db resuming each group at its archived point', async () => {
    const file = join(dir, 'a.amsnap')
    await archive(file)
    const target = join(dir, 'new')
    const restored = await restoreToDataDir(file, target)
    const peer = restored.peer
    expect((await loadOrCreatePeerKey(target)).publicKey.toString()).toBeTruthy()
    const store = await openNamespaceStore({ dataDir: target, name: 'ledger' })
    expect(store.applied()).toMatchObject({ index: 42, term: 5 })
    expect(await store.get('a', 'k')).toEqual(new Uint8Array([7]))
    await store.close()
    const raft = await openRaftLogStore({ path: join(target, 'raft.db') })
    try {
      expect(raft.groups().sort()).toEqual(['_system', 'ledger'])
      const ns = raft.open('ledger').snapshot()
      expect(ns.meta).toEqual({ index: 42, term: 5, conf: { voters: [peer], learners: [] } })
      expect(decodeSnapshotMarker(ns.data)).toEqual({ namespace: 'ledger', index: 42, term: 5, maker: peer })
      const sys = raft.open('_system').snapshot()
      const catalog = new Packr({ useRecords: false }).unpack(sys.data) as {
        nodes: Array<{ peer: string }>
        namespaces: Array<{ name: string; replicationFactor: number; voters: string[]; moduleHash: string }>
      }
      expect(catalog.nodes.map((n) => n.peer)).toEqual([peer])
      expect(catalog.namespaces).toMatchObject([
        { name: 'ledger', replicationFactor: 3, voters: [peer], moduleHash: HASH },
      ])
    } finally {
      await raft.close()
    }
  })

  it('refuses a directory that is not empty, and a database that is not what the manifest says', async () => {
    const file = join(dir, 'a.amsnap')
    await archive(file)
    const busy = join(dir, 'busy')
    await mkdir(busy)
    await writeFile(join(busy, 'keep'), 'x')
    await expect(restoreToDataDir(file, busy)).rejects.toThrow(/not empty/)
    expect(await readdir(busy)).toEqual(['keep'])
    const lying = join(dir, 'lying.amsnap')
    await archive(lying, { lieAboutIndex: true })
    await expect(restoreToDataDir(lying, join(dir, 'never'))).rejects.toThrow(
      /does not hold what the manifest says/,
    )
    expect((await readdir(dir)).sort()).toEqual(['a.amsnap', 'busy', 'lying.amsnap', 'src'])
  })
})
