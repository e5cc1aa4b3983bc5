/**
 * Builds the example actors once per source version into a temp-dir cache shared by test files
 * and benchmarks (the AssemblyScript compiler takes seconds to load; the sources rarely change).
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildActor } from '../../actors/build.js'

export const exampleNames = ['counter', 'register', 'list-append', 'chat', 'rate-limiter'] as const
export type ExampleName = (typeof exampleNames)[number]

const root = join(import.meta.dirname, '..', '..')

function sourceHash(name: string): string {
  const h = createHash('sha256')
  for (const file of ['actors/sdk/assembly/index.ts', 'actors/build.ts', `examples/${name}/assembly/index.ts`]) {
    h.update(readFileSync(join(root, file)))
  }
  return h.digest('hex').slice(0, 16)
}

/** The built `.wasm` bytes of an example (built now if the cache lacks this source version). */
export async function exampleModule(name: ExampleName): Promise<Uint8Array> {
  const dir = join(tmpdir(), 'actormesh-examples')
  mkdirSync(dir, { recursive: true })
  const out = join(dir, `${name}-${sourceHash(name)}.wasm`)
  if (!existsSync(out)) {
    const partial = `${out}.${process.pid}.tmp`
    await buildActor(join(root, 'examples', name, 'assembly', 'index.ts'), partial)
    renameSync(partial, out) // atomic: concurrent test files never read half a file
  }
  return new Uint8Array(readFileSync(out))
}
