import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  EXIT_FAILURE,
  EXIT_REFUSED,
  EXIT_USAGE,
  exitCodeOf,
  RefusedError,
  UsageError,
} from '../../node/cli/errors.js'
import { envName, type OptionSpec, resolveOptions, wholeNumber } from '../../node/cli/options.js'

const dir = mkdtempSync(join(tmpdir(), 'am-cli-options-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
function configFile(doc: unknown): string {
  const path = join(dir, `config-${++files}.json`)
  writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc))
  return path
}

const spec: Record<string, OptionSpec> = {
  node: { type: 'string', default: 'http://127.0.0.1:8080' },
  seed: { type: 'string', multiple: true, env: 'SEEDS' },
  json: { type: 'boolean' },
  secret: { type: 'string', env: null },
}

describe('resolveOptions', () => {
  it('takes a flag over the environment, the environment over the file, the file over the default', () => {
    const file = configFile({ node: 'http://file:1', seed: ['/f1', '/f2'], json: true })
    const env = { ACTORMESH_NODE: 'http://env:1', ACTORMESH_CONFIG: file }
    const all = resolveOptions(['--node', 'http://flag:1'], spec, { env })
    expect([all.values.node, all.sources.node]).toEqual(['http://flag:1', 'flag'])
    const noFlag = resolveOptions([], spec, { env })
    expect([noFlag.values.node, noFlag.sources.node]).toEqual(['http://env:1', 'env'])
    const fileOnly = resolveOptions([], spec, { env: { ACTORMESH_CONFIG: file } })
    expect([fileOnly.values.node, fileOnly.sources.node]).toEqual(['http://file:1', 'config'])
    expect(fileOnly.values.seed).toEqual(['/f1', '/f2'])
    expect(fileOnly.values.json).toBe(true)
    const none = resolveOptions([], spec, { env: {} })
    expect([none.values.node, none.sources.node]).toEqual(['http://127.0.0.1:8080', 'default'])
    expect([none.values.json, none.sources.json]).toEqual([undefined, undefined])
  })

  it('reads --config over ACTORMESH_CONFIG, and ignores file keys the command does not take', () => {
    const a = configFile({ node: 'http://a:1', unrelated: 5 })
    const b = configFile({ node: 'http://b:1' })
    const o = resolveOptions(['--config', b], spec, { env: { ACTORMESH_CONFIG: a } })
    expect(o.values.node).toBe('http://b:1')
    expect(resolveOptions([], spec, { env: { ACTORMESH_CONFIG: a } }).values.unrelated).toBeUndefined()
  })

  it('splits a repeatable flag from the environment on commas and names its own variable', () => {
    const o = resolveOptions([], spec, { env: { ACTORMESH_SEEDS: '/a, /b,,' } })
    expect(o.values.seed).toEqual(['/a', '/b'])
    const flags = resolveOptions(['--seed', '/x', '--seed', '/y'], spec, { env: { ACTORMESH_SEEDS: '/a' } })
    expect(flags.values.seed).toEqual(['/x', '/y'])
    expect(envName('seed', spec.seed!)).toBe('ACTORMESH_SEEDS')
    expect(envName('retry-ms', { type: 'string' })).toBe('ACTORMESH_RETRY_MS')
  })

  it('never reads a flag without an environment variable from the environment', () => {
    const file = configFile({ secret: 'from-file' })
    expect(resolveOptions([], spec, { env: { ACTORMESH_SECRET: 'x' } }).values.secret).toBeUndefined()
    expect(resolveOptions(['--config', file], spec, { env: { ACTORMESH_SECRET: 'x' } }).values.secret).toBe(
      'from-file',
    )
  })

  it('reads booleans from the environment as true/false/1/0 and refuses anything else', () => {
    expect(resolveOptions([], spec, { env: { ACTORMESH_JSON: '1' } }).values.json).toBe(true)
    expect(resolveOptions([], spec, { env: { ACTORMESH_JSON: 'false' } }).values.json).toBe(false)
    expect(() => resolveOptions([], spec, { env: { ACTORMESH_JSON: 'maybe' } })).toThrow(
      new UsageError("Invalid ACTORMESH_JSON 'maybe': expected true or false"),
    )
  })

  it('refuses a config file that is missing, not JSON, not an object, or has a key of the wrong type', () => {
    const missing = join(dir, 'nope.json')
    expect(() => resolveOptions(['--config', missing], spec, { env: {} })).toThrow(UsageError)
    expect(() => resolveOptions(['--config', configFile('{oops')], spec, { env: {} })).toThrow(/not JSON/)
    expect(() => resolveOptions(['--config', configFile([1])], spec, { env: {} })).toThrow(/JSON object/)
    const wrong = configFile({ json: 'yes' })
    expect(() => resolveOptions(['--config', wrong], spec, { env: {} })).toThrow(
      `Invalid 'json' in config file '${wrong}': "yes", expected true or false`,
    )
    // A number is a fine value for a string flag (e.g. "replicas": 3).
    const num = configFile({ node: 3 })
    expect(resolveOptions(['--config', num], spec, { env: {} }).values.node).toBe('3')
  })

  it('refuses unknown flags and positionals unless the command takes them; sees --help', () => {
    expect(() => resolveOptions(['--bogus'], spec, { env: {} })).toThrow(/Unknown option '--bogus'/)
    expect(() => resolveOptions(['extra'], spec, { env: {} })).toThrow(/positional/)
    const o = resolveOptions(['a', 'b', '-h'], spec, { env: {} }, { positionals: true })
    expect([o.positionals, o.help]).toEqual([['a', 'b'], true])
  })

  it('checks whole numbers with the flag and value in the message', () => {
    const o = resolveOptions(['--node', '12x'], spec, { env: {} })
    expect(() => wholeNumber(o, 'node', 1, 9)).toThrow(
      new UsageError("Invalid --node '12x': expected a whole number from 1 to 9"),
    )
    expect(wholeNumber(resolveOptions(['--node', '7'], spec, { env: {} }), 'node', 1, 9)).toBe(7)
  })
})

describe('exit codes', () => {
  it('are 2 for bad usage, 3 for a refusal by the node and 1 for anything else', () => {
    expect(exitCodeOf(new UsageError('x'))).toBe(EXIT_USAGE)
    let parseError: unknown
    try {
      resolveOptions(['--bogus'], spec, { env: {} })
    } catch (e) {
      parseError = e
    }
    expect(exitCodeOf(parseError)).toBe(EXIT_USAGE)
    expect(exitCodeOf(new RefusedError(404, 'ACTORMESH_NAMESPACE_NOT_FOUND', 'x'))).toBe(EXIT_REFUSED)
    expect(exitCodeOf(new Error('Cannot reach'))).toBe(EXIT_FAILURE)
  })
})
