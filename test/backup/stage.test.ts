/** The staging flow's replica side and pusher, in process over a real namespace store. */
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { stagedPath } from '../../node/backup/rollback.js'
import { pushStaged, type StageCall, Stager } from '../../node/backup/stage.js'
import {
  createNamespaceSnapshot,
  inspectNamespaceFile,
  type NamespaceStore,
  openNamespaceStore,
} from '../../storage/index.js'
import { tempDir } from '../storage/helpers.js'

const log = pino({ level: 'silent' })
let dir = ''
let remove: () => Promise<void> = async () => {}
const stores: NamespaceStore[] = []
beforeEach(async () => {
  ;({ dir, remove } = await tempDir('am-stage-'))
})
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  await remove()
})

async function open(node: string, name = 'ledger'): Promise<NamespaceStore> {
  const s = await openNamespaceStore({ dataDir: join(dir, node), name })
  stores.push(s)
  return s
}

/** A copy of a small namespace database in a file; returns its path and size. */
async function copyFile(name = 'ledger'): Promise<{ path: string; bytes: number }> {
  const src = await open(`src-${name}`, name)
  await src.apply({
    index: 3,
    term: 1,
    writes: [{ actor: 'a', key: 'k', value: new Uint8Array(70_000).fill(3) }],
  })
  const snap = await createNamespaceSnapshot(src)
  const parts: Buffer[] = []
  for await (const c of snap.chunks) parts.push(Buffer.from(c))
  const path = join(dir, `${name}.copy.db`)
  await writeFile(path, Buffer.concat(parts))
  return { path, bytes: snap.meta.bytes }
}

const via =
  (stager: Stager, from = 'coordinator'): StageCall =>
  (method, payload) =>
    stager.handle(method, from, payload)

describe('staging an archived copy on a replica', () => {
  it('leaves the checked copy beside the database', async () => {
    const target = await open('replica')
    const stager = new Stager((ns) => (ns === 'ledger' ? target : undefined), log)
    const { path, bytes } = await copyFile()
    await pushStaged(via(stager), 'ledger', '0123456789abcdef', path, bytes)
    // Checking it opened it as a database (which may rewrite its header's journal mode): same content.
    const staged = await inspectNamespaceFile(stagedPath(target, '0123456789abcdef'))
    expect(staged).toEqual(await inspectNamespaceFile(path))
    expect(staged).toMatchObject({ namespace: 'ledger', index: 3, stateBytes: 70_001 })
    expect((await readdir(join(dir, 'replica', 'ns'))).filter((f) => f.endsWith('.part'))).toEqual([])
  })

  it('refuses a copy whose bytes do not match, and one of another namespace, leaving nothing', async () => {
    const target = await open('replica')
    const stager = new Stager((ns) => (ns === 'ledger' ? target : undefined), log)
    const { path, bytes } = await copyFile()
    const lying: StageCall = (method, payload) =>
      stager.handle(
        method,
        'c',
        method === 'backup.stage.commit' ? { ...(payload as object), sha256: '0'.repeat(64) } : payload,
      )
    await expect(pushStaged(lying, 'ledger', '00000000000000a1', path, bytes)).rejects.toThrow(/SHA-256/)
    const other = await copyFile('other')
    await expect(
      pushStaged(via(stager), 'ledger', '00000000000000a2', other.path, other.bytes),
    ).rejects.toThrow(/holds namespace 'other'/)
    expect((await readdir(join(dir, 'replica', 'ns'))).filter((f) => f.includes('.stage-'))).toEqual([])
  })

  it('refuses chunks out of order, unknown sessions, bad ids and a replica that does not host the namespace', async () => {
    const target = await open('replica')
    const stager = new Stager((ns) => (ns === 'ledger' ? target : undefined), log, { stagesMax: 1 })
    await stager.handle('backup.stage.open', 'c', { ns: 'ledger', id: '00000000000000b1', bytes: 10 })
    await expect(
      stager.handle('backup.stage.chunk', 'c', { id: '00000000000000b1', n: 1, data: new Uint8Array(5) }),
    ).rejects.toThrow(/not the next/)
    await expect(
      stager.handle('backup.stage.chunk', 'someone-else', {
        id: '00000000000000b1',
        n: 0,
        data: new Uint8Array(5),
      }),
    ).rejects.toThrow(/No staging session/)
    await expect(
      stager.handle('backup.stage.open', 'c', { ns: 'ledger', id: '00000000000000b2', bytes: 1 }),
    ).rejects.toThrow(/pushes are open/)
    await expect(
      stager.handle('backup.stage.open', 'c', { ns: 'ledger', id: '../../x', bytes: 1 }),
    ).rejects.toThrow(TypeError)
    await expect(
      stager.handle('backup.stage.open', 'c', { ns: 'nope', id: '00000000000000b3', bytes: 1 }),
    ).rejects.toThrow(/no replica of it here/)
    await stager.handle('backup.stage.abort', 'c', { id: '00000000000000b1' })
    expect((await readdir(join(dir, 'replica', 'ns'))).filter((f) => f.includes('.stage-'))).toEqual([])
  })

  it('discards a committed copy when the rollback fails elsewhere', async () => {
    const target = await open('replica')
    const stager = new Stager((ns) => (ns === 'ledger' ? target : undefined), log)
    const { path, bytes } = await copyFile()
    await pushStaged(via(stager), 'ledger', '00000000000000c1', path, bytes)
    await stager.handle('backup.stage.discard', 'c', { ns: 'ledger', id: '00000000000000c1' })
    expect((await readdir(join(dir, 'replica', 'ns'))).filter((f) => f.includes('.stage-'))).toEqual([])
  })
})
