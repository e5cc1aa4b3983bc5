/**
 * `actormesh ns create|list|delete`: namespaces of a running cluster, over the node's HTTP API.
 */
import { byName, type NamespaceDoc, shortPeer, table } from '../status-command.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { NODE_FLAGS_HELP, nodeJson, nodeOptions, nodeTarget, nsPaths } from './http.js'
import { bool, commandOptions, type OptionSpec, type ResolvedOptions, wholeNumber } from './options.js'

/** The largest replication factor `ns create` accepts (the node checks its own limit too). */
const REPLICAS_MAX = 99

const help = `Usage:
  actormesh ns create NAME [--replicas N]   create a namespace (placed on the least-loaded live nodes)
  actormesh ns list [--json]                the catalog's namespaces with replicas, leader and module
  actormesh ns delete NAME                  delete a namespace and its state on every replica

Flags:
  --replicas N          replication factor of a new namespace [ACTORMESH_REPLICAS] (the node's default, 3)
  --json                list: print the node's answer as JSON
${NODE_FLAGS_HELP}
${COMMON_FLAGS_HELP}
`

const options: Record<string, OptionSpec> = {
  ...nodeOptions,
  replicas: { type: 'string' },
  json: { type: 'boolean', env: null },
}

/** `actormesh ns`. */
export const nsCommand: Command = {
  name: 'ns',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help, { positionals: true })
    if (!o) return
    const [sub, ...args] = o.positionals
    if (sub === 'create') return create(o, one(args, 'ns create NAME'), io)
    if (sub === 'list') {
      if (args.length > 0) throw new UsageError(`Unexpected argument '${args[0]}' for ns list`)
      return list(o, io)
    }
    if (sub === 'delete') return remove(o, one(args, 'ns delete NAME'), io)
    throw new UsageError(
      sub === undefined ? 'ns needs create, list or delete' : `Unknown ns command '${sub}'`,
    )
  },
}

function one(args: string[], usage: string): string {
  if (args.length !== 1) throw new UsageError(`Expected exactly one NAME: ${usage}`)
  return args[0]!
}

async function create(o: ResolvedOptions, name: string, io: CliIo): Promise<void> {
  const replicas = wholeNumber(o, 'replicas', 1, REPLICAS_MAX)
  const made = await nodeJson<Partial<NamespaceDoc>>(nodeTarget(o), {
    method: 'POST',
    path: ['/v1/ns', '/v1/namespaces'],
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, ...(replicas !== undefined ? { replicationFactor: replicas } : {}) }),
  })
  const voters = Array.isArray(made.voters) ? made.voters : []
  io.out.write(
    `Created namespace '${name}': replication factor ${made.replicationFactor ?? replicas ?? '?'}, replicas ${voters.map(shortPeer).join(' ') || '(being placed)'}\n`,
  )
}

async function list(o: ResolvedOptions, io: CliIo): Promise<void> {
  const doc = await nodeJson<{ namespaces?: unknown }>(nodeTarget(o), { path: ['/v1/ns', '/v1/namespaces'] })
  if (!Array.isArray(doc.namespaces))
    throw new Error(`Cannot read the node's namespace list: 'namespaces' is missing or malformed`)
  if (bool(o, 'json')) {
    io.out.write(`${JSON.stringify(doc, null, 2)}\n`)
    return
  }
  io.out.write(formatNamespaces(doc.namespaces as NamespaceDoc[]))
}

/** The `ns list` table: one row per namespace, sorted by name. */
export function formatNamespaces(rows: NamespaceDoc[]): string {
  if (rows.length === 0) return 'No namespaces.\n'
  const sorted = [...rows].sort(byName)
  const cells = sorted.map((n) => [
    n.name,
    String(n.replicationFactor),
    n.leader ? shortPeer(n.leader) : 'none',
    n.voters.map(shortPeer).join(' ') || '-',
    String(n.learners.length),
    n.moduleVersion ? `v${n.moduleVersion} ${n.moduleHash?.slice(0, 12) ?? ''}` : 'none',
  ])
  return `${table(['NAME', 'RF', 'LEADER', 'VOTERS', 'LEARNERS', 'MODULE'], cells).join('\n')}\n`
}

async function remove(o: ResolvedOptions, name: string, io: CliIo): Promise<void> {
  await nodeJson<unknown>(nodeTarget(o), { method: 'DELETE', path: nsPaths(name)[0] })
  io.out.write(`Deleted namespace '${name}'\n`)
}
