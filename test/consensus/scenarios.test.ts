/**
 * Runs every scenario script in test/consensus/scenarios/testdata as its own test. The scripts
 * are deterministic (seeded randomness, synchronous delivery), so an output differs only when
 * Raft's behaviour or the printing changed. UPDATE_SCENARIOS=1 rewrites the expected outputs.
 * A block marked `# known-bug:` gets its own test, expected to fail until the bug is fixed.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { firstMismatch, parseScript, renderScript, runScript } from './scenarios/runner.js'

const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'scenarios', 'testdata')
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort()
const update = process.env.UPDATE_SCENARIOS === '1'

describe('scenario script format', () => {
  const text = '# a comment\nadd-nodes 1 voters=(1)\n----\nwrong\n\nno-such-command 1\n----\nx\n'

  test('renderScript reproduces a parsed script when the outputs equal the expectations', () => {
    const script = parseScript(text)
    expect(
      renderScript(
        script,
        script.blocks.map((b) => b.expected),
      ),
    ).toBe(text)
  })

  test('runScript prints a failing command as an error line and firstMismatch points at it', () => {
    const script = parseScript(text)
    const outputs = runScript(script)
    expect(outputs[0]).toEqual(['1: voters=(1) learners=()'])
    expect(outputs[1]?.[0]).toMatch(/^error: TypeError: Cannot run 'no-such-command'/)
    expect(firstMismatch(script, outputs)?.line).toBe(2)
  })

  test('parseScript rejects a command that is not followed by a separator', () => {
    expect(() => parseScript('status 1\nok\n')).toThrow(SyntaxError)
  })
})

describe('raft scenario scripts', () => {
  test('the testdata folder holds scripts', () => {
    expect(files.length).toBeGreaterThan(0)
  })

  for (const file of files) {
    const path = join(dir, file)
    const text = readFileSync(path, 'utf8')
    const script = parseScript(text)
    let outputs: string[][] | undefined
    const run = (): string[][] => {
      outputs ??= runScript(script)
      return outputs
    }

    test(`scenario ${file} produces its expected output`, () => {
      const actual = renderScript(script, run())
      if (update) {
        if (actual !== text) writeFileSync(path, actual)
        return
      }
      const bad = firstMismatch(script, run())
      const where = bad ? `${file}:${bad.line} '${bad.command}'` : file
      expect(actual, `output differs from the script at ${where}`).toBe(text)
    })

    script.blocks.forEach((block, i) => {
      if (block.knownBug === undefined) return
      // Fails while the bug is there; when it passes, the bug is fixed: remove the marker.
      test.fails(`scenario ${file}:${block.line} known bug: ${block.knownBug}`, () => {
        expect(run()[i]).toEqual(block.expected)
      })
    })
  }
})
