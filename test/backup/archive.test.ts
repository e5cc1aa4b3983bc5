import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ArchiveWriter, readArchive, verifyArchive } from '../../node/backup/archive.js'
import {
  ArchiveCorruptError,
  ArchiveKeyError,
  ArchiveMemberError,
  ArchiveVersionError,
  BackupError,
} from '../../node/backup/errors.js'
import { seeded, tempDir } from '../storage/helpers.js'
import { json, manifestOf, partOf, RECORD, seededBytes, writeArchive, writeRawArchive } from './helpers.js'

const SEED = Number(process.env.SEED ?? 20_250)
let dir = ''
let remove: () => Promise<void> = async () => {}

beforeEach(async () => {
  ;({ dir, remove } = await tempDir('am-archive-'))
})
afterEach(async () => {
  await remove()
})

const key = new Uint8Array(32).fill(7)
const members = (): Array<[string, Uint8Array]> => [
  ['alpha', seededBytes(SEED, 3_500_000)],
  ['beta', seededBytes(SEED + 1, 10)],
]

/** Every part's bytes as read back, and the manifest. */
async function readAll(path: string, k?: Uint8Array) {
  const got = new Map<string, Buffer>()
  let manifest: unknown
  for await (const item of readArchive(path, k ? { key: k } : {})) {
    if (item.kind === 'manifest') manifest = item.manifest
    else {
      const chunks: Buffer[] = []
      for await (const c of item.chunks) chunks.push(Buffer.from(c))
      got.set(item.part.namespace, Buffer.concat(chunks))
    }
  }
  return { got, manifest }
}

describe('snapshot archive format', () => {
  for (const encrypted of [false, true]) {
    it(`round-trips parts and the manifest ${encrypted ? 'encrypted' : 'in the clear'}`, async () => {
      const path = join(dir, 'a.amsnap')
      const input = members()
      const manifest = await writeArchive(path, input, encrypted ? key : undefined)
      const { got, manifest: read } = await readAll(path, encrypted ? key : undefined)
      expect(read).toEqual(manifest)
      for (const [ns, bytes] of input) expect(Buffer.compare(got.get(ns)!, Buffer.from(bytes))).toBe(0)
      if (encrypted) {
        // The content is not in the file in the clear.
        const raw = await readFile(path)
        expect(raw.includes(Buffer.from(input[0]![1].subarray(1000, 1064)))).toBe(false)
      }
    })
  }

  it('reads and checks a part the consumer skipped', async () => {
    const path = join(dir, 'a.amsnap')
    const manifest = await writeArchive(path, members())
    expect(await verifyArchive(path)).toEqual(manifest)
  })

  it('refuses to overwrite an existing file and leaves no partial file after abort', async () => {
    const path = join(dir, 'a.amsnap')
    await writeFile(path, 'x')
    await expect(ArchiveWriter.create(path)).rejects.toThrow(/exists/)
    const other = join(dir, 'b.amsnap')
    const w = await ArchiveWriter.create(other)
    const bytes = seededBytes(SEED, 1000)
    const part = { ...partOf('alpha', bytes), sha256: '0'.repeat(64) }
    await expect(w.addPart(part, [bytes])).rejects.toThrow(/SHA-256/)
    await w.abort()
    await expect(stat(other)).rejects.toThrow()
  })

  for (const encrypted of [false, true]) {
    it(`refuses every truncation ${encrypted ? 'of an encrypted archive' : 'in the clear'}`, async () => {
      const path = join(dir, 'a.amsnap')
      await writeArchive(path, members(), encrypted ? key : undefined)
      const full = await readFile(path)
      const rnd = seeded(SEED)
      // Cut points: in the header, seeded ones, and the last bytes (the END record, the final frame).
      const cuts = [0, 5, 11, 13, full.byteLength - 1, full.byteLength - 32, full.byteLength - 40]
      for (let i = 0; i < 12; i++) cuts.push(rnd(full.byteLength))
      for (const cut of cuts) {
        const bad = join(dir, `cut-${cut}.amsnap`)
        await writeFile(bad, full.subarray(0, cut))
        const err = await verifyArchive(bad, encrypted ? { key } : {}).catch((e: unknown) => e)
        expect(err, `cut at ${cut} (SEED=${SEED})`).toBeInstanceOf(BackupError)
        if (cut >= 12) expect(err).toBeInstanceOf(ArchiveCorruptError)
      }
    })

    it(`refuses flipped bits ${encrypted ? 'of an encrypted archive' : 'in the clear'}`, async () => {
      const path = join(dir, 'a.amsnap')
      await writeArchive(path, members(), encrypted ? key : undefined)
      const full = await readFile(path)
      const rnd = seeded(SEED + 2)
      const positions = [8, 10, 12, 20, 30, full.byteLength - 1, full.byteLength - 20]
      for (let i = 0; i < 16; i++) positions.push(rnd(full.byteLength))
      for (const at of positions) {
        const bad = Buffer.from(full)
        bad[at] = bad[at]! ^ (1 << rnd(8))
        const p = join(dir, `flip-${at}.amsnap`)
        await writeFile(p, bad)
        const err = await verifyArchive(p, encrypted ? { key } : {}).catch((e: unknown) => e)
        expect(err, `flip at ${at} of ${full.byteLength} (SEED=${SEED})`).toBeInstanceOf(BackupError)
      }
    })
  }

  it('names a wrong key and a missing key, and never mistakes them for damage', async () => {
    const path = join(dir, 'a.amsnap')
    await writeArchive(path, members(), key)
    const wrong = new Uint8Array(randomBytes(32))
    await expect(verifyArchive(path, { key: wrong })).rejects.toThrow(ArchiveKeyError)
    await expect(verifyArchive(path, { key: wrong })).rejects.toThrow(/not the one it was written with/)
    await expect(verifyArchive(path)).rejects.toThrow(/encrypted; give its key file/)
  })

  it('names an unknown format version and a file that is no archive', async () => {
    const path = join(dir, 'v9.amsnap')
    await writeRawArchive(path, [], 9)
    await expect(verifyArchive(path)).rejects.toThrow(ArchiveVersionError)
    await expect(verifyArchive(path)).rejects.toThrow(/format version 9 is not supported/)
    const other = join(dir, 'not.amsnap')
    await writeFile(other, 'SQLite format 3\0 and so on')
    await expect(verifyArchive(other)).rejects.toThrow(/not an ActorMesh snapshot archive/)
  })

  it('refuses member names that could escape the target directory', async () => {
    const bytes = seededBytes(SEED, 100)
    const names: Array<[string, string]> = [
      ['../../etc/passwd', 'alpha'],
      ['/etc/passwd', 'alpha'],
      ['ns/../../x.db', 'alpha'],
      ['ns/../raft.db', '../raft'],
      ['ns/alpha.db', 'Alpha'],
    ]
    for (const [name, namespace] of names) {
      const path = join(dir, 'escape.amsnap')
      const part = { ...partOf('alpha', bytes), name, namespace }
      await writeRawArchive(path, [
        [RECORD.Part, json(part)],
        [RECORD.Data, bytes],
        [RECORD.Manifest, json(manifestOf([part]))],
      ])
      await expect(verifyArchive(path), name).rejects.toThrow(ArchiveMemberError)
    }
  })

  it('refuses a manifest that disagrees with the parts, trailing bytes and data outside a part', async () => {
    const bytes = seededBytes(SEED, 100)
    const part = partOf('alpha', bytes)
    const path = join(dir, 'm.amsnap')
    await writeRawArchive(path, [
      [RECORD.Part, json(part)],
      [RECORD.Data, bytes],
      [RECORD.Manifest, json(manifestOf([{ ...part, index: 99 }]))],
    ])
    await expect(verifyArchive(path)).rejects.toThrow(/disagrees/)
    await writeRawArchive(path, [
      [RECORD.Part, json(part)],
      [RECORD.Data, bytes],
      [RECORD.Manifest, json(manifestOf([part]))],
    ])
    expect((await verifyArchive(path)).parts).toEqual([part])
    await writeFile(path, Buffer.concat([await readFile(path), Buffer.from([0])]))
    await expect(verifyArchive(path)).rejects.toThrow(/follow its end record/)
    await writeRawArchive(path, [[RECORD.Data, bytes]])
    await expect(verifyArchive(path)).rejects.toThrow(/data outside a part/)
  })
})
