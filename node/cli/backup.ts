/**
 * `actormesh snapshot` and `actormesh restore` (node/backup/): their own argument parsing, with
 * the CLI's help, `--config` and, for `snapshot`, `--node` from `ACTORMESH_NODE` or the config
 * file. `restore` takes no `--node` from them: `--node` switches it from "new cluster" to
 * "roll a running namespace back", which only an explicit flag may do.
 */
import { readFileSync } from 'node:fs'
import { runRestoreCommand } from '../backup/restore-command.js'
import { runSnapshotCommand } from '../backup/snapshot-command.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { runStart } from './start.js'

const snapshotHelp = `Usage:
  actormesh snapshot [--node URL] --out FILE [--namespace NAME ...] [--key-file FILE] [--token TOKEN]
  actormesh snapshot verify FILE [--key-file FILE]

snapshot: for each namespace a ReadIndex barrier, then its state at or after it, into a new
archive FILE (docs/backup.md); --key-file encrypts it (AES-256-GCM; the file holds 32 bytes, e.g.
openssl rand -hex 32). --node defaults to ACTORMESH_NODE, then the config file's "node"; --token
(an admin token, for a node with auth on) to ACTORMESH_TOKEN, then the config file's "token".
snapshot verify: checks format, every checksum and (with the key) decryption; prints the manifest.
${COMMON_FLAGS_HELP}
`

const restoreHelp = `Usage:
  actormesh restore --from FILE --data DIR [--key-file FILE] [--no-start] [start flags]
  actormesh restore --from FILE --node URL --namespace NAME [--key-file FILE] [--token TOKEN]

With --data: a new cluster in the empty DIR (new peer id) holding the archived namespaces, then
runs the node as start does (other nodes join it with --seed; replicas are added up to each
replication factor). With --node: rolls NAME of a running cluster back to its archived state
through Raft, on every replica at once (--token: an admin token, default ACTORMESH_TOKEN). --node
is never taken from the environment here.
${COMMON_FLAGS_HELP}
`

/** `argv` with `--token` from ACTORMESH_TOKEN or the config file's "token" when it has none. */
function withToken(argv: string[], io: CliIo, config: Record<string, unknown>): string[] {
  if (argv[0] === 'verify' || argv.some((a) => a === '--token' || a.startsWith('--token='))) return argv
  const token = io.env.ACTORMESH_TOKEN || (typeof config.token === 'string' ? config.token : undefined)
  return token ? [...argv, '--token', token] : argv
}

/** `--config FILE` taken out of `argv` (the backup commands' parsers do not know it). */
function takeConfig(argv: string[], env: CliIo['env']): { argv: string[]; config: Record<string, unknown> } {
  const rest: string[] = []
  let path = env.ACTORMESH_CONFIG
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--config') path = argv[++i]
    else if (arg.startsWith('--config=')) path = arg.slice('--config='.length)
    else rest.push(arg)
  }
  if (path === undefined) return { argv: rest, config: {} }
  try {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as unknown
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object')
    return { argv: rest, config: doc as Record<string, unknown> }
  } catch (e) {
    throw new UsageError(`Cannot read config file '${path}': ${(e as Error).message}`)
  }
}

const wantsHelp = (argv: string[]) => argv.includes('--help') || argv.includes('-h')
const backupIo = (io: CliIo) => ({ out: io.out, err: io.err, usage: (m: string) => new UsageError(m) })

/** `actormesh snapshot`. */
export const snapshotCommand: Command = {
  name: 'snapshot',
  help: snapshotHelp,
  async run(argv, io) {
    if (wantsHelp(argv)) return void io.out.write(snapshotHelp)
    const { argv: args, config } = takeConfig(argv, io.env)
    const hasNode = args.some((a) => a === '--node' || a.startsWith('--node='))
    const node = io.env.ACTORMESH_NODE || (typeof config.node === 'string' ? config.node : undefined)
    const withNode = args[0] !== 'verify' && !hasNode && node ? [...args, '--node', node] : args
    await runSnapshotCommand(withToken(withNode, io, config), backupIo(io))
  },
}

/** `actormesh restore`. */
export const restoreCommand: Command = {
  name: 'restore',
  help: restoreHelp,
  async run(argv, io) {
    if (wantsHelp(argv)) return void io.out.write(restoreHelp)
    const rollback = argv.some((a) => a === '--node' || a.startsWith('--node='))
    const args = rollback ? withToken(argv, io, takeConfig([], io.env).config) : argv
    await runRestoreCommand(args, backupIo(io), (startArgv) => runStart(startArgv, io))
  },
}
