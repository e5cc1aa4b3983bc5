/**
 * `actormesh`: the command-line entry point — `start` runs a node, `status` reports a running
 * node's view of the cluster. Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { runRestoreCommand } from './backup/restore-command.js'
import { runSnapshotCommand } from './backup/snapshot-command.js'
import { chaosAddressProblem } from './chaos.js'
import { startMeshNode } from './mesh-node.js'
import { checkStatusDocs, formatStatus } from './status-command.js'

const USAGE = `Usage: actormesh <command> [flags]

Commands:
  start    Run a mesh node. SIGTERM/SIGINT: hand its leaderships to other nodes, flush, close, exit 0.
  status   Print a running node's view: itself, members, namespaces, leaders and replica health.
  snapshot Write a consistent, verifiable archive of a running cluster (docs/backup.md).
  restore  Start a new cluster from an archive, or roll one namespace of a running cluster back.

start flags (environment variable in brackets; flags win):
  --data DIR            data directory                 [ACTORMESH_DATA]   (./data)
  --listen MULTIADDR    libp2p listen address, repeat  [ACTORMESH_LISTEN] (/ip4/127.0.0.1/tcp/7070)
  --seed MULTIADDR      seed peer (…/p2p/<id>), repeat [ACTORMESH_SEEDS, comma-separated]
  --http HOST:PORT      HTTP gateway address           [ACTORMESH_HTTP]   (127.0.0.1:8080)
  --cluster-key FILE    pre-shared cluster key (libp2p pnet) [ACTORMESH_CLUSTER_KEY]
  --log-level LEVEL     pino level                     [ACTORMESH_LOG_LEVEL] (info)
  --replica-dead-timeout-ms MS  replace a namespace replica dead this long [ACTORMESH_REPLICA_DEAD_TIMEOUT_MS] (10000)
  --snapshot-every-entries N    compact a group's log after N applied entries [ACTORMESH_SNAPSHOT_EVERY_ENTRIES] (10000)
  --chaos               accept network faults over HTTP (PUT /v1/chaos/faults; docs/chaos.md); loopback addresses only

status flags:
  --http HOST:PORT      the node's HTTP gateway        [ACTORMESH_HTTP]   (127.0.0.1:8080)
  --url URL             the node's gateway as a URL (instead of --http)
  --json                print the node's /v1/status, /v1/members and /v1/namespaces as one JSON document

snapshot --node URL --out FILE [--namespace NAME ...] [--key-file FILE]
  for each namespace a ReadIndex barrier, then its state at or after it, into a new archive FILE;
  --key-file encrypts it (AES-256-GCM; the file holds 32 bytes, e.g. openssl rand -hex 32)
snapshot verify FILE [--key-file FILE]
  checks format, every checksum and (with the key) decryption; prints the manifest

restore --from FILE --data DIR [--key-file FILE] [--no-start] [start flags]
  a new cluster in the empty DIR (new peer id) holding the archived namespaces, then runs the node
  as start does (other nodes join it with --seed; replicas are added up to each replication factor)
restore --from FILE --node URL --namespace NAME [--key-file FILE]
  rolls NAME of a running cluster back to its archived state through Raft, on every replica at once
`

/** How long `status` waits for each of the node's answers, in milliseconds. */
const STATUS_FETCH_TIMEOUT_MS = 5_000

class UsageError extends Error {}

/** Where the backup commands write, and how they report bad usage (exit 2). */
const backupIo = { out: process.stdout, err: process.stderr, usage: (m: string) => new UsageError(m) }

function list(value: string | undefined): string[] {
  return value
    ? value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : []
}

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      listen: { type: 'string', multiple: true },
      seed: { type: 'string', multiple: true },
      http: { type: 'string' },
      'cluster-key': { type: 'string' },
      'log-level': { type: 'string' },
      'replica-dead-timeout-ms': { type: 'string' },
      'snapshot-every-entries': { type: 'string' },
      chaos: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return
  }
  const env = process.env
  const log = pino({ level: values['log-level'] ?? env.ACTORMESH_LOG_LEVEL ?? 'info' })
  const clusterKeyFile = values['cluster-key'] ?? env.ACTORMESH_CLUSTER_KEY
  const deadText = values['replica-dead-timeout-ms'] ?? env.ACTORMESH_REPLICA_DEAD_TIMEOUT_MS
  const replicaDeadTimeoutMs = deadText === undefined ? undefined : Number(deadText)
  if (
    replicaDeadTimeoutMs !== undefined &&
    !(Number.isInteger(replicaDeadTimeoutMs) && replicaDeadTimeoutMs >= 0)
  ) {
    throw new UsageError(
      `Invalid --replica-dead-timeout-ms '${deadText}': expected a whole number of milliseconds`,
    )
  }
  const snapText = values['snapshot-every-entries'] ?? env.ACTORMESH_SNAPSHOT_EVERY_ENTRIES
  const snapshotEveryEntries = snapText === undefined ? undefined : Number(snapText)
  if (
    snapshotEveryEntries !== undefined &&
    !(Number.isInteger(snapshotEveryEntries) && snapshotEveryEntries > 0)
  ) {
    throw new UsageError(`Invalid --snapshot-every-entries '${snapText}': expected a positive whole number`)
  }
  const listen =
    values.listen ??
    (list(env.ACTORMESH_LISTEN).length ? list(env.ACTORMESH_LISTEN) : ['/ip4/127.0.0.1/tcp/7070'])
  const http = values.http ?? env.ACTORMESH_HTTP ?? '127.0.0.1:8080'
  const chaosProblem = values.chaos ? chaosAddressProblem(listen, http) : undefined
  if (chaosProblem)
    throw new UsageError(`Refusing --chaos: ${chaosProblem} (fault injection is for loopback test clusters)`)
  const node = await startMeshNode(
    {
      dataDir: resolve(values.data ?? env.ACTORMESH_DATA ?? 'data'),
      listen,
      seeds: values.seed ?? list(env.ACTORMESH_SEEDS),
      http,
      ...(values.chaos ? { chaos: true } : {}),
      ...(clusterKeyFile ? { clusterKeyFile } : {}),
      ...(replicaDeadTimeoutMs !== undefined ? { replicaDeadTimeoutMs } : {}),
      ...(snapshotEveryEntries !== undefined ? { snapshotEveryEntries } : {}),
    },
    log,
  )
  const addr = node.host.getMultiaddrs()[0]?.toString() ?? ''
  process.stdout.write(
    [
      '',
      `ActorMesh node ${node.host.peerId.toString()} is up.`,
      `  health:   curl ${node.url}/healthz`,
      `  members:  curl ${node.url}/v1/members`,
      `  add a node: npm start -- --data ./data2 --listen /ip4/127.0.0.1/tcp/7071 --http 127.0.0.1:8081 --seed ${addr}`,
      '  stop:     Ctrl-C',
      '',
    ].join('\n'),
  )
  await new Promise<void>((done) => {
    let stopping = false
    // The first signal stops gracefully (drain: leaderships handed over, then close); a second one,
    // of either kind, gives up on that and exits at once.
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting without finishing the graceful stop')
        process.exit(1)
      }
      stopping = true
      log.info({ signal }, 'shutting down: handing leaderships over, then closing')
      node.stop().then(done, (e: unknown) => {
        log.error({ err: String(e) }, 'shutdown failed')
        process.exitCode = 1
        done()
      })
    }
    process.on('SIGINT', shutdown)
    process.on('SIGTERM', shutdown)
  })
}

async function status(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      http: { type: 'string' },
      url: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return
  }
  if (values.http !== undefined && values.url !== undefined)
    throw new UsageError('Give --http or --url, not both')
  const base =
    values.url !== undefined
      ? gatewayUrl(values.url)
      : gatewayOf(values.http ?? process.env.ACTORMESH_HTTP ?? '127.0.0.1:8080')
  const [st, members, namespaces] = await Promise.all(
    ['/v1/status', '/v1/members', '/v1/namespaces'].map((path) => getJson(base, path)),
  )
  const docs = checkStatusDocs({ status: st, members, namespaces })
  process.stdout.write(
    values.json ? `${JSON.stringify({ url: base, ...docs }, null, 2)}\n` : formatStatus(docs, base),
  )
}

/** `--url`: an http(s) URL, without a trailing slash. */
function gatewayUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError(`Invalid --url '${text}': expected e.g. http://127.0.0.1:8080`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`Invalid --url '${text}': expected an http:// or https:// URL`)
  return url.href.replace(/\/+$/, '')
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

/** GETs `base + path` as JSON; an unreachable node or an error answer is a clear message. */
async function getJson(base: string, path: string): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(STATUS_FETCH_TIMEOUT_MS) })
  } catch (e) {
    throw new Error(`Cannot reach ${base} (${reachFailure(e)}): is a node running?`)
  }
  const body = await res.text()
  if (!res.ok) throw new Error(`Node at ${base} answered ${res.status} to GET ${path}: ${body.trim()}`)
  try {
    return JSON.parse(body)
  } catch {
    throw new Error(`Node at ${base} answered GET ${path} with something other than JSON`)
  }
}

/** Why a fetch failed, in a word: the socket error's code, or a timeout. */
function reachFailure(e: unknown): string {
  if ((e as Error).name === 'TimeoutError') return `no answer within ${STATUS_FETCH_TIMEOUT_MS} ms`
  const cause = (e as { cause?: { code?: unknown; errors?: Array<{ code?: unknown }> } }).cause
  const code = cause?.code ?? cause?.errors?.[0]?.code
  return typeof code === 'string' ? code : String((e as Error).message)
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start':
      await start(rest)
      return
    case 'status':
      await status(rest)
      return
    case 'snapshot':
      await runSnapshotCommand(rest, backupIo)
      return
    case 'restore':
      await runRestoreCommand(rest, backupIo, start)
      return
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return
    default:
      throw new UsageError(`Unknown command '${command}'`)
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    process.stderr.write(`actormesh: ${(e as Error).message}\n${usage ? `\n${USAGE}` : ''}`)
    process.exit(usage ? 2 : 1)
  },
)
