/**
 * `actormesh status`: a running node's view of the cluster (node/status-command.ts formats it).
 */
import { checkStatusDocs, formatStatus } from '../status-command.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { checkNodeUrl, DEFAULT_NODE_URL, nodeJson } from './http.js'
import { bool, commandOptions, type OptionSource, type OptionSpec, str } from './options.js'

const options: Record<string, OptionSpec> = {
  node: { type: 'string' },
  url: { type: 'string', env: null },
  http: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', env: null },
}

const help = `Usage: actormesh status [--node URL | --http HOST:PORT] [--json]

Prints a running node's view: itself and _system, members, namespaces, leaders and replica health.

Flags:
  --node URL            the node's gateway             [ACTORMESH_NODE]   (${DEFAULT_NODE_URL})
  --url URL             the same as --node
  --http HOST:PORT      the node's gateway as its listen address [ACTORMESH_HTTP]
  --token TOKEN         bearer token                   [ACTORMESH_TOKEN]
  --json                print the node's /v1/status, /v1/members and /v1/namespaces as one JSON document
${COMMON_FLAGS_HELP}
`

/** `actormesh status`. */
export const statusCommand: Command = {
  name: 'status',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help)
    if (!o) return
    const base = statusUrl(o.values as Record<string, string | undefined>, o.sources)
    const token = str(o, 'token')
    const target = { url: base, ...(token ? { token } : {}) }
    const [st, members, namespaces] = await Promise.all(
      ['/v1/status', '/v1/members', '/v1/namespaces'].map((path) => nodeJson<unknown>(target, { path })),
    )
    const docs = checkStatusDocs({ status: st, members, namespaces })
    io.out.write(
      bool(o, 'json') ? `${JSON.stringify({ url: base, ...docs }, null, 2)}\n` : formatStatus(docs, base),
    )
  },
}

const RANK: Record<OptionSource, number> = { flag: 3, env: 2, config: 1, default: 0 }

/**
 * The gateway to ask: `--node`/`--url` (a URL) or `--http` (a listen address), whichever comes
 * from the higher source; on a tie of sources the URL wins. Two given as flags is a usage error.
 */
function statusUrl(
  values: Record<string, string | undefined>,
  sources: Record<string, OptionSource | undefined>,
): string {
  if (values.url !== undefined && sources.node === 'flag')
    throw new UsageError('Give --node or --url, not both')
  const urlFlag = values.url !== undefined ? 'url' : 'node'
  const url = values[urlFlag]
  const rankUrl = url === undefined ? -1 : RANK[sources[urlFlag]!]
  const rankHttp = values.http === undefined ? -1 : RANK[sources.http!]
  if (rankUrl === RANK.flag && rankHttp === RANK.flag) throw new UsageError('Give --http or --url, not both')
  if (rankHttp > rankUrl) return gatewayOf(values.http!)
  return url === undefined ? DEFAULT_NODE_URL : checkNodeUrl(url, `--${urlFlag}`)
}

/** `--http HOST:PORT` as a URL; a wildcard listen host (0.0.0.0, ::) is reached on loopback. */
function gatewayOf(hostPort: string): string {
  const at = hostPort.lastIndexOf(':')
  const host = at > 0 ? hostPort.slice(0, at).replace(/^\[|\]$/g, '') : ''
  const port = Number(hostPort.slice(at + 1))
  if (at < 0 || !Number.isInteger(port) || port < 1 || port > 65_535)
    throw new UsageError(`Invalid --http '${hostPort}': expected HOST:PORT with a port from 1 to 65535`)
  const reach = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${reach.includes(':') ? `[${reach}]` : reach}:${port}`
}
