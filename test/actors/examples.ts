/**
 * Builds the example actors once per source version into a temp-dir cache shared by test files
 * and benchmarks (the AssemblyScript compiler takes seconds to load; the sources rarely change).
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const exampleNames = ['counter', 'register', 'list-append', 'chat', 'rate-limiter'] as const
export type ExampleName = (typeof exampleNames)[number]

const root = join(import.meta.dirname, '..', '..')

function sourceHash(source: string): string {
  const h = createHash('sha256')
  for (const file of ['actors/sdk/assembly/index.ts', 'actors/build.ts', source]) {
    h.update(readFileSync(join(root, file)))
  }
  return h.digest('hex').slice(0, 16)
}

/** The built `.wasm` bytes of an example (built now if the cache lacks this source version). */
export function exampleModule(name: ExampleName): Promise<Uint8Array> {
  return builtModule(`examples/${name}/assembly/index.ts`)
}

/** Test-only actors under examples/test-fixtures/<name>/assembly. */
export function fixtureModule(name: 'misbehaving' | 'counter-v2'): Promise<Uint8Array> {
  return builtModule(`examples/test-fixtures/${name}/assembly/index.ts`)
}

/** The built `.wasm` of an AssemblyScript source (path relative to the repository root). */
export async function builtModule(source: string): Promise<Uint8Array> {
  const dir = join(tmpdir(), 'actormesh-examples')
  mkdirSync(dir, { recursive: true })
  const out = join(dir, `${source.replaceAll('/', '_')}-${sourceHash(source)}.wasm`)
  if (!existsSync(out)) {
    const partial = `${out}.${process.pid}.tmp`
    // Imported lazily: the compiler weighs hundreds of MB, which benchmarks must not count.
    const { buildActor } = await import('../../actors/build.js')
    await buildActor(join(root, source), partial)
    renameSync(partial, out) // atomic: concurrent test files never read half a file
  }
  return new Uint8Array(readFileSync(out))
}
