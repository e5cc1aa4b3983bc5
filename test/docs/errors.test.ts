import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..')

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (name === 'node_modules' || name === 'sdk' || name === 'assembly') continue
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path))
    else if (name.endsWith('.ts')) out.push(path)
  }
  return out
}

describe('docs/errors.md', () => {
  it('lists every error code that the source defines', () => {
    const documented = readFileSync(join(root, 'docs', 'errors.md'), 'utf8')
    const codes = new Set<string>()
    for (const folder of ['consensus', 'storage', 'actors', 'node', 'chaos']) {
      let files: string[] = []
      try {
        files = sourceFiles(join(root, folder))
      } catch {
        continue
      }
      for (const file of files) {
        for (const m of readFileSync(file, 'utf8').matchAll(/'(ACTORMESH_[A-Z0-9_]+)'/g)) codes.add(m[1]!)
      }
    }
    expect(codes.size).toBeGreaterThan(0)
    const missing = [...codes].filter((c) => !documented.includes(`\`${c}\``))
    expect(missing).toEqual([])
  })
})
