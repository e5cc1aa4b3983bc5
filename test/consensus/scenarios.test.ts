/**
 * Runs every scenario script in test/consensus/scenarios/testdata as its own test. The scripts
 * are deterministic (seeded randomness, synchronous delivery), so an output differs only when
 * Raft's behaviour or the printing changed. UPDATE_SCENARIOS=1 rewrites the expected outputs.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { firstMismatch, isKnownBug, parseScript, renderScript, runScript } from './scenarios/runner.js'

const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'scenarios', 'testdata')
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort()
const update = process.env.UPDATE_SCENARIOS === '1'

describe('raft scenario scripts', () => {
  test('the testdata folder holds scripts', () => {
    expect(files.length).toBeGreaterThan(0)
  })

  for (const file of files) {
    const path = join(dir, file)
    const text = readFileSync(path, 'utf8')
    const script = parseScript(text)
    const known = isKnownBug(script)
    const run = known ? test.fails : test
    run(`scenario ${file} produces its expected output`, () => {
      const outputs = runScript(script)
      const actual = renderScript(script, outputs)
      if (update && !known && actual !== text) writeFileSync(path, actual)
      if (update && !known) return
      const bad = firstMismatch(script, outputs)
      const where = bad ? `${file}:${bad.line} '${bad.command}'` : file
      expect(actual, `output differs from the script at ${where}`).toBe(text)
    })
  }
})
