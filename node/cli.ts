/**
 * `actormesh`: the command-line entry point. So far `start`; the other commands arrive with the
 * request-path, gateway and operations work. Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { startMeshNode } from './mesh-node.js'

const USAGE = `Usage: actormesh <command> [flags]

Commands:
  start    Run a mesh node.

start flags (environment variable in brackets; flags win):
  --data DIR            data directory                 [ACTORMESH_DATA]   (./data)
  --listen MULTIADDR    libp2p listen address, repeat  [ACTORMESH_LISTEN] (/ip4/127.0.0.1/tcp/7070)
  --seed MULTIADDR      seed peer (…/p2p/<id>), repeat [ACTORMESH_SEEDS, comma-separated]
  --http HOST:PORT      HTTP gateway address           [ACTORMESH_HTTP]   (127.0.0.1:8080)
  --cluster-key FILE    pre-shared cluster key (libp2p pnet) [ACTORMESH_CLUSTER_KEY]
  --log-level LEVEL     pino level                     [ACTORMESH_LOG_LEVEL] (info)
  --replica-dead-timeout-ms MS  replace a namespace replica dead this long [ACTORMESH_REPLICA_DEAD_TIMEOUT_MS] (10000)
  --snapshot-every-entries N    compact a group's log after N applied entries [ACTORMESH_SNAPSHOT_EVERY_ENTRIES] (10000)
`

class UsageError extends Error {}

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
  const node = await startMeshNode(
    {
      dataDir: resolve(values.data ?? env.ACTORMESH_DATA ?? 'data'),
      listen:
        values.listen ??
        (list(env.ACTORMESH_LISTEN).length ? list(env.ACTORMESH_LISTEN) : ['/ip4/127.0.0.1/tcp/7070']),
      seeds: values.seed ?? list(env.ACTORMESH_SEEDS),
      http: values.http ?? env.ACTORMESH_HTTP ?? '127.0.0.1:8080',
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
    const shutdown = (signal: string) => {
      log.info({ signal }, 'shutting down')
      node.stop().then(done, (e: unknown) => {
        log.error({ err: String(e) }, 'shutdown failed')
        process.exitCode = 1
        done()
      })
    }
    process.once('SIGINT', () => shutdown('SIGINT'))
    process.once('SIGTERM', () => shutdown('SIGTERM'))
  })
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start':
      await start(rest)
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
