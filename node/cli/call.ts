/**
 * `actormesh call NS ACTOR METHOD [PAYLOAD | --data @file | --json '{..}'] [--key K] [--readonly]
 * [--stale]`: one actor call through any node; prints the reply.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { NODE_FLAGS_HELP, nodeOptions, nodeRequest, nodeTarget, nsPaths } from './http.js'
import { bool, commandOptions, type OptionSpec, type ResolvedOptions, str } from './options.js'

/**
 * The codes a write without an idempotency key is retried on: the node certainly did not run it.
 * Other 503s (e.g. ACTORMESH_OUTCOME_UNKNOWN) may have run it, and a retry would run it twice.
 */
const SAFE_WRITE_RETRY = new Set(['ACTORMESH_NO_LEADER', 'ACTORMESH_NOT_LEADER', 'ACTORMESH_NOT_APPLIED'])

const help = `Usage: actormesh call NS ACTOR METHOD [PAYLOAD | --data @FILE | --json JSON] [flags]

Runs METHOD of actor ACTOR in namespace NS through the node (routed to the namespace's leader) and
prints the reply: as text when it is UTF-8, else base64 (with a note on stderr).

Flags:
  --data TEXT|@FILE     the payload: TEXT, or the bytes of FILE (@- reads stdin)
  --json JSON           the payload as JSON (checked here, sent as application/json)
  --key K               idempotency key: a retry with the same key within 10 minutes returns the first reply
  --readonly            run as a read (fails if the method writes)
  --stale               a read served by the nearest replica from its applied state (implies --readonly)
${NODE_FLAGS_HELP}
${COMMON_FLAGS_HELP}

A write without --key is retried only on answers that say it did not run (no leader, not leader,
not applied); reads and keyed writes are retried on every 503.
`

const options: Record<string, OptionSpec> = {
  ...nodeOptions,
  data: { type: 'string', env: null },
  json: { type: 'string', env: null },
  key: { type: 'string', env: null },
  readonly: { type: 'boolean', env: null },
  stale: { type: 'boolean', env: null },
}

/** `actormesh call`. */
export const callCommand: Command = {
  name: 'call',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help, { positionals: true })
    if (!o) return
    if (o.positionals.length < 3 || o.positionals.length > 4)
      throw new UsageError('call needs NS ACTOR METHOD and at most one PAYLOAD')
    const [ns, actor, method, inline] = o.positionals as [string, string, string, string | undefined]
    const { body, json } = await payloadOf(o, inline)
    const stale = bool(o, 'stale')
    const readonly = stale || bool(o, 'readonly')
    const key = str(o, 'key')
    const query = [...(readonly ? ['readonly=true'] : []), ...(stale ? ['consistency=stale'] : [])].join('&')
    const rest = `/actors/${encodeURIComponent(actor)}/${encodeURIComponent(method)}${query ? `?${query}` : ''}`
    const res = await nodeRequest(nodeTarget(o), {
      method: 'POST',
      path: nsPaths(ns, rest),
      headers: {
        'content-type': json ? 'application/json' : 'application/octet-stream',
        ...(key !== undefined ? { 'idempotency-key': key } : {}),
      },
      body,
      ...(readonly || key !== undefined ? {} : { retryable: (code: string) => SAFE_WRITE_RETRY.has(code) }),
    })
    const reply = new Uint8Array(await res.arrayBuffer())
    const shown = showReply(reply)
    io.out.write(`${shown.text}\n`)
    if (shown.base64)
      io.err.write(`note: the reply (${reply.length} bytes) is not UTF-8; printed as base64\n`)
    if (res.headers.get('x-actormesh-replayed') === 'true')
      io.err.write(`note: replayed — the first reply to idempotency key '${key}'\n`)
  },
}

/** The payload from the positional, `--data` or `--json` (at most one of them). */
async function payloadOf(
  o: ResolvedOptions,
  inline: string | undefined,
): Promise<{ body: Uint8Array | string; json: boolean }> {
  const data = str(o, 'data')
  const json = str(o, 'json')
  const given = [inline, data, json].filter((v) => v !== undefined).length
  if (given > 1) throw new UsageError('Give the payload once: as PAYLOAD, --data or --json')
  if (json !== undefined) {
    try {
      JSON.parse(json)
    } catch (e) {
      throw new UsageError(`Invalid --json '${json}': ${(e as Error).message}`)
    }
    return { body: json, json: true }
  }
  if (data?.startsWith('@')) {
    const file = data.slice(1)
    try {
      return { body: new Uint8Array(file === '-' ? readFileSync(0) : await readFile(file)), json: false }
    } catch (e) {
      throw new UsageError(`Cannot read --data file '${file}': ${(e as Error).message}`)
    }
  }
  return { body: data ?? inline ?? '', json: false }
}

/** A reply as text when it is valid UTF-8, else as base64. */
export function showReply(reply: Uint8Array): { text: string; base64: boolean } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(reply), base64: false }
  } catch {
    return { text: Buffer.from(reply).toString('base64'), base64: true }
  }
}
