/**
 * Options of every CLI command from four sources, highest first: command-line flags, `ACTORMESH_*`
 * environment variables, a JSON config file (`--config FILE` or `ACTORMESH_CONFIG`; its keys are
 * the long flag names), then the command's defaults. One resolver for all commands, so the rule
 * is the same everywhere and is tested once.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { UsageError } from './errors.js'

/** One flag of a command. */
export interface OptionSpec {
  type: 'string' | 'boolean'
  /** Repeatable flag; from the environment it is comma-separated, from the config file an array. */
  multiple?: boolean
  short?: string
  /**
   * The environment variable after `ACTORMESH_` (default: the flag's name upper-cased with `_`
   * for `-`); `null` for a flag that has none (it is then read from flags and the file only).
   */
  env?: string | null
  default?: string | boolean | string[]
}

/** Where a value came from. */
export type OptionSource = 'flag' | 'env' | 'config' | 'default'

/** The resolved options of one command. */
export interface ResolvedOptions {
  values: Record<string, string | boolean | string[] | undefined>
  sources: Record<string, OptionSource | undefined>
  positionals: string[]
  /** `--help` or `-h` was given: the command prints its help and does nothing else. */
  help: boolean
}

/** What the resolver reads besides argv (the CLI passes `process.env`; tests pass their own). */
export interface OptionContext {
  env: Record<string, string | undefined>
  /** Reads the config file (default: from disk as UTF-8). */
  readFile?: (path: string) => string
}

/** The environment variable a flag reads, or undefined when it has none. */
export function envName(flag: string, spec: OptionSpec): string | undefined {
  if (spec.env === null) return undefined
  return `ACTORMESH_${spec.env ?? flag.toUpperCase().replaceAll('-', '_')}`
}

/**
 * Parses `argv` against `spec` (strict: an unknown flag is a usage error) and fills every flag
 * from the first source that has it. `--help`/`-h` and `--config FILE` are accepted by every
 * command. Config keys a command does not take are ignored, so one file can serve every command;
 * a key of the wrong type is a usage error naming the key and the file.
 */
export function resolveOptions(
  argv: string[],
  spec: Record<string, OptionSpec>,
  context: OptionContext,
  options: { positionals?: boolean } = {},
): ResolvedOptions {
  const parsed = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(
        Object.entries(spec).map(([name, s]) => [
          name,
          { type: s.type, ...(s.multiple ? { multiple: true } : {}), ...(s.short ? { short: s.short } : {}) },
        ]),
      ),
      help: { type: 'boolean', short: 'h' },
      config: { type: 'string' },
    },
    strict: true,
    allowPositionals: options.positionals ?? false,
  })
  const flags = parsed.values as Record<string, string | boolean | string[] | undefined>
  const configPath = (flags.config as string | undefined) ?? context.env.ACTORMESH_CONFIG
  const file = configPath === undefined ? {} : readConfig(configPath, context.readFile)
  const values: ResolvedOptions['values'] = {}
  const sources: ResolvedOptions['sources'] = {}
  for (const [name, s] of Object.entries(spec)) {
    const env = envName(name, s)
    const envText = env === undefined ? undefined : context.env[env]
    let value: string | boolean | string[] | undefined
    let source: OptionSource | undefined
    if (flags[name] !== undefined) [value, source] = [flags[name], 'flag']
    else if (envText !== undefined && envText !== '') [value, source] = [fromEnv(env!, envText, s), 'env']
    else if (file[name] !== undefined)
      [value, source] = [fromConfig(configPath!, name, file[name], s), 'config']
    else if (s.default !== undefined) [value, source] = [s.default, 'default']
    values[name] = value
    sources[name] = source
  }
  return { values, sources, positionals: parsed.positionals, help: flags.help === true }
}

/** The config file as an object; a missing file, bad JSON or a non-object is a usage error. */
function readConfig(path: string, read = (p: string) => readFileSync(p, 'utf8')): Record<string, unknown> {
  let text: string
  try {
    text = read(path)
  } catch (e) {
    throw new UsageError(`Cannot read config file '${path}': ${(e as Error).message}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new UsageError(`Cannot read config file '${path}': not JSON (${(e as Error).message})`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new UsageError(`Cannot read config file '${path}': expected a JSON object of flag names`)
  return doc as Record<string, unknown>
}

function fromEnv(name: string, text: string, spec: OptionSpec): string | boolean | string[] {
  if (spec.type === 'boolean') {
    if (/^(1|true|yes)$/i.test(text)) return true
    if (/^(0|false|no)$/i.test(text)) return false
    throw new UsageError(`Invalid ${name} '${text}': expected true or false`)
  }
  if (spec.multiple)
    return text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  return text
}

function fromConfig(
  path: string,
  key: string,
  value: unknown,
  spec: OptionSpec,
): string | boolean | string[] {
  const bad = (want: string) =>
    new UsageError(`Invalid '${key}' in config file '${path}': ${JSON.stringify(value)}, expected ${want}`)
  if (spec.type === 'boolean') {
    if (typeof value !== 'boolean') throw bad('true or false')
    return value
  }
  const scalar = (v: unknown) => {
    if (typeof v === 'string') return v
    if (typeof v === 'number' && Number.isFinite(v)) return String(v)
    throw bad(spec.multiple ? 'a string or an array of strings' : 'a string or a number')
  }
  if (spec.multiple) return Array.isArray(value) ? value.map(scalar) : [scalar(value)]
  return scalar(value)
}

/** A string option (the caller's spec says it is one). */
export function str(o: ResolvedOptions, name: string): string | undefined {
  const v = o.values[name]
  return typeof v === 'string' ? v : undefined
}

/** A boolean option. */
export function bool(o: ResolvedOptions, name: string): boolean {
  return o.values[name] === true
}

/** A repeatable option (empty when none). */
export function strs(o: ResolvedOptions, name: string): string[] {
  const v = o.values[name]
  return Array.isArray(v) ? v : []
}

/**
 * A whole number option within `[min, max]`, or undefined when not given; anything else is a
 * usage error naming the flag and the value.
 */
export function wholeNumber(o: ResolvedOptions, name: string, min: number, max: number): number | undefined {
  const text = str(o, name)
  if (text === undefined) return undefined
  const n = Number(text)
  if (text.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`Invalid --${name} '${text}': expected a whole number from ${min} to ${max}`)
  return n
}

/**
 * `resolveOptions` for a command's `run`: undefined, after writing `help`, when `--help` was given,
 * so a command starts with `const o = commandOptions(...); if (!o) return`.
 */
export function commandOptions(
  argv: string[],
  spec: Record<string, OptionSpec>,
  io: { env: OptionContext['env']; out: { write(text: string): unknown } },
  help: string,
  options: { positionals?: boolean } = {},
): ResolvedOptions | undefined {
  const o = resolveOptions(argv, spec, { env: io.env }, options)
  if (!o.help) return o
  io.out.write(help)
  return undefined
}
