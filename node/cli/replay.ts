/**
 * `actormesh replay RECORDS.json --module FILE.wasm`: re-runs recorded calls (actors/replay.ts)
 * against a module, here, without a node: each call sees exactly the state values it read when it
 * ran, the same timestamp and random seed, and the command lists how the outcome differs from the
 * recorded one (reply, writes, broadcasts, fuel). With the module that recorded the calls there is
 * no difference; with a new version it shows what the new code would have done.
 *
 * Records are what `ActorRuntime.exportCalls` returns, as JSON (`encodeCallRecords`). A running
 * node keeps them per resident actor but has no route that exports them yet, so today the files
 * come from code that embeds the runtime (tests, tools).
 */
import { readFile } from 'node:fs/promises'
import { type CallOutcome, type CallRecord, createActorRuntime } from '../../actors/index.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { bool, commandOptions, type OptionSpec, str } from './options.js'

const help = `Usage: actormesh replay RECORDS.json --module FILE.wasm [--json]

Re-runs recorded actor calls against FILE.wasm with the state values, time and random seed each
call saw, and prints how each outcome differs from the recorded one. Exit 0 when every replay
matches its record, 1 when one differs. RECORDS.json holds one record or an array of them
(ActorRuntime.exportCalls as JSON: bytes base64; see docs/cli.md).

Flags:
  --module FILE         the module to replay with (the recording one, or a new version)
  --json                print the results as JSON
${COMMON_FLAGS_HELP}
`

const options: Record<string, OptionSpec> = {
  module: { type: 'string', env: null },
  json: { type: 'boolean', env: null },
}

/** `actormesh replay`. */
export const replayCommand: Command = {
  name: 'replay',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help, { positionals: true })
    if (!o) return
    if (o.positionals.length !== 1) throw new UsageError('replay needs exactly one RECORDS.json')
    const moduleFile = str(o, 'module')
    if (!moduleFile) throw new UsageError('replay needs --module FILE.wasm')
    const records = decodeCallRecords(await readText(o.positionals[0]!), o.positionals[0]!)
    const moduleBytes = new Uint8Array(
      await readFile(moduleFile).catch((e: Error) => {
        throw new UsageError(`Cannot read module '${moduleFile}': ${e.message}`)
      }),
    )
    const runtime = createActorRuntime({
      stateOf: (ns) => {
        throw new Error(`Assertion failed: a replay read the store of namespace '${ns}'`)
      },
    })
    const results = []
    for (const record of records)
      results.push({ record, result: await runtime.replay(record, { moduleBytes }) })
    const differ = results.filter((r) => r.result.differences.length > 0).length
    if (bool(o, 'json')) {
      const doc = results.map(({ record, result }) => ({
        actor: record.actor,
        method: record.method,
        recordedModule: record.moduleHash,
        replayedModule: result.moduleHash,
        outcome: encodeOutcome(result.outcome),
        differences: result.differences,
        unrecordedReads: result.unrecordedReads,
      }))
      io.out.write(`${JSON.stringify(doc, null, 2)}\n`)
    } else {
      for (const { record, result } of results) {
        const head = `${record.namespace}/${record.actor}.${record.method} (recorded with ${record.moduleHash.slice(0, 12)}, replayed with ${result.moduleHash.slice(0, 12)})`
        const lines =
          result.differences.length === 0 ? ['  same outcome'] : result.differences.map((d) => `  ${d}`)
        if (result.unrecordedReads.length > 0)
          lines.push(
            `  read values the record does not hold (read as absent): ${result.unrecordedReads.join(', ')}`,
          )
        io.out.write(`${head}\n${lines.join('\n')}\n`)
      }
      io.out.write(`${records.length} calls replayed, ${differ} differ\n`)
    }
    if (differ > 0) process.exitCode = 1
  },
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (e) {
    throw new UsageError(`Cannot read records '${file}': ${(e as Error).message}`)
  }
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')

/** Call records as JSON text (every byte string base64). */
export function encodeCallRecords(records: readonly CallRecord[]): string {
  return JSON.stringify(
    records.map((r) => ({
      ...r,
      payload: b64(r.payload),
      reads: {
        gets: r.reads.gets.map(([k, v]) => [k, v === null ? null : b64(v)]),
        lists: r.reads.lists.map(([p, entries]) => [p, entries.map(([k, v]) => [k, b64(v)])]),
      },
      outcome: encodeOutcome(r.outcome),
    })),
    null,
    2,
  )
}

function encodeOutcome(o: CallOutcome): unknown {
  if (!o.ok) return o
  return {
    ...o,
    reply: b64(o.reply),
    writes: o.writes.map(([k, v]) => [k, v === null ? null : b64(v)]),
    broadcasts: o.broadcasts.map(b64),
  }
}

/** Call records from `encodeCallRecords`'s JSON (one record or an array); bad input names the file. */
export function decodeCallRecords(text: string, file: string): CallRecord[] {
  const bad = (what: string) => new UsageError(`Cannot read records '${file}': ${what}`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`)
  }
  const list = Array.isArray(doc) ? doc : [doc]
  return list.map((r, i) => {
    try {
      return decodeRecord(r as Record<string, unknown>)
    } catch (e) {
      throw bad(`record ${i}: ${(e as Error).message}`)
    }
  })
}

function bytes(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string') throw new TypeError(`'${what}' must be a base64 string`)
  return new Uint8Array(Buffer.from(v, 'base64'))
}

function need<T>(ok: boolean, value: T, what: string): T {
  if (!ok) throw new TypeError(`'${what}' is missing or malformed`)
  return value
}

function decodeRecord(r: Record<string, unknown>): CallRecord {
  const s = (k: string) => need(typeof r[k] === 'string', r[k] as string, k)
  const n = (k: string) => need(typeof r[k] === 'number', r[k] as number, k)
  // The call's identity first, so a record that is not one at all is named by what it lacks first.
  const head = { namespace: s('namespace'), actor: s('actor'), method: s('method') }
  const reads = need(
    typeof r.reads === 'object' && r.reads !== null,
    r.reads as Record<string, unknown>,
    'reads',
  )
  const gets = need(Array.isArray(reads.gets), reads.gets as Array<[string, unknown]>, 'reads.gets')
  const lists = need(
    Array.isArray(reads.lists),
    reads.lists as Array<[string, Array<[string, unknown]>]>,
    'reads.lists',
  )
  const o = need(
    typeof r.outcome === 'object' && r.outcome !== null,
    r.outcome as Record<string, unknown>,
    'outcome',
  )
  const outcome: CallOutcome = o.ok
    ? {
        ok: true,
        reply: bytes(o.reply, 'outcome.reply'),
        writes: need(Array.isArray(o.writes), o.writes as Array<[string, unknown]>, 'outcome.writes').map(
          ([k, v]) => [k, v === null ? null : bytes(v, `write '${k}'`)],
        ),
        broadcasts: need(Array.isArray(o.broadcasts), o.broadcasts as unknown[], 'outcome.broadcasts').map(
          (b) => bytes(b, 'broadcast'),
        ),
        fuelUsed: need(typeof o.fuelUsed === 'number', o.fuelUsed as number, 'outcome.fuelUsed'),
      }
    : { ok: false, code: String(o.code), message: String(o.message) }
  return {
    ...head,
    payload: bytes(r.payload, 'payload'),
    now: n('now'),
    seed: n('seed'),
    moduleHash: s('moduleHash'),
    stateBytes: n('stateBytes'),
    reads: {
      gets: gets.map(([k, v]) => [k, v === null ? null : bytes(v, `read '${k}'`)]),
      lists: lists.map(([p, entries]) => [p, entries.map(([k, v]) => [k, bytes(v, `read '${k}'`)])]),
    },
    outcome,
  }
}
