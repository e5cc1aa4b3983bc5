/** Helpers for storage tests: temp directories (real files, removed afterwards), seeds, digests. */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NamespaceStore } from '../../storage/index.js'

/** A fresh temp directory and a function that removes it. */
export async function tempDir(prefix = 'am-storage-'): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}

/** mulberry32: a tiny seeded PRNG so every random choice is reproducible from the printed seed. */
export function seeded(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

/** A digest of everything a namespace holds, computed through its public reads. */
export async function stateDigest(s: NamespaceStore, actors: string[]): Promise<string> {
  const h = createHash('sha256')
  h.update(JSON.stringify(s.applied()))
  h.update(String(await s.namespaceBytes()))
  for (const a of actors) {
    h.update(`${a}:${await s.actorBytes(a)}`)
    for (const [k, v] of await s.loadActor(a)) h.update(k).update(v)
  }
  for (const m of await s.modules()) h.update(`${m.version}${m.hash}${m.metadata}`).update(m.bytes)
  return h.digest('hex')
}
