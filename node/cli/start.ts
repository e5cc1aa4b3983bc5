/**
 * `actormesh start`: runs a mesh node until SIGTERM/SIGINT, then stops it gracefully (leaderships
 * handed over, last turn persisted, closed, exit 0); a second signal exits at once (1).
 */
import type { KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import pino from 'pino'
import { toPublicKey } from '../../actors/index.js'
import { readAdminTokenFile } from '../auth.js'
import { chaosAddressProblem } from '../chaos.js'
import { ADMIN_TOKEN_REQUIRED, type MeshNode, startMeshNode } from '../mesh-node.js'
import { traceLogFields } from '../tracing.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { DEFAULT_NODE_URL } from './http.js'
import { bool, commandOptions, type OptionSpec, str, strs, wholeNumber } from './options.js'

const options: Record<string, OptionSpec> = {
  data: { type: 'string', default: 'data' },
  listen: { type: 'string', multiple: true, default: ['/ip4/127.0.0.1/tcp/7070'] },
  seed: { type: 'string', multiple: true, env: 'SEEDS' },
  http: { type: 'string', default: '127.0.0.1:8080' },
  'cluster-key': { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
  'replica-dead-timeout-ms': { type: 'string' },
  'snapshot-every-entries': { type: 'string' },
  // Fault injection is never switched on by an inherited environment variable.
  chaos: { type: 'boolean', env: null },
  'admin-token-file': { type: 'string' },
  'otlp-endpoint': { type: 'string' },
  'deploy-key': { type: 'string', multiple: true, env: 'DEPLOY_KEYS' },
}

const help = `Usage: actormesh start [flags]

Runs a mesh node. SIGTERM/SIGINT: hand its leaderships to other nodes, flush, close, exit 0.

Flags (environment variable in brackets; flags > environment > config file > defaults):
  --data DIR            data directory                 [ACTORMESH_DATA]   (./data)
  --listen MULTIADDR    libp2p listen address, repeat  [ACTORMESH_LISTEN] (/ip4/127.0.0.1/tcp/7070)
  --seed MULTIADDR      seed peer (…/p2p/<id>), repeat [ACTORMESH_SEEDS, comma-separated]
  --http HOST:PORT      HTTP gateway address           [ACTORMESH_HTTP]   (127.0.0.1:8080)
  --cluster-key FILE    pre-shared cluster key (libp2p pnet; actormesh keygen --cluster-key) [ACTORMESH_CLUSTER_KEY]
  --log-level LEVEL     pino level                     [ACTORMESH_LOG_LEVEL] (info)
  --replica-dead-timeout-ms MS  replace a namespace replica dead this long [ACTORMESH_REPLICA_DEAD_TIMEOUT_MS] (10000)
  --snapshot-every-entries N    compact a group's log after N applied entries [ACTORMESH_SNAPSHOT_EVERY_ENTRIES] (10000)
  --chaos               accept network faults over HTTP (PUT /v1/chaos/faults; docs/chaos.md); loopback addresses only
  --admin-token-file FILE  admin bearer token; auth on from startup (docs/gateway.md); required unless every address is loopback [ACTORMESH_ADMIN_TOKEN_FILE]
  --deploy-key FILE     accept only modules signed by this Ed25519 public key (the .pub of actormesh keygen); repeat for more [ACTORMESH_DEPLOY_KEYS, comma-separated]
  --otlp-endpoint URL   export call spans over OTLP/HTTP, e.g. http://127.0.0.1:4318 (no tracing SDK is loaded without it) [ACTORMESH_OTLP_ENDPOINT]
${COMMON_FLAGS_HELP}
`

/** `actormesh start`. */
export const startCommand: Command = {
  name: 'start',
  help,
  run: runStart,
}

/** Runs a node with `argv`'s start flags until a signal stops it (also used by `restore`). */
export async function runStart(argv: string[], io: CliIo): Promise<void> {
  const o = commandOptions(argv, options, io, help)
  if (!o) return
  const replicaDeadTimeoutMs = wholeNumber(o, 'replica-dead-timeout-ms', 0, Number.MAX_SAFE_INTEGER)
  const snapshotEveryEntries = wholeNumber(o, 'snapshot-every-entries', 1, Number.MAX_SAFE_INTEGER)
  const listen = strs(o, 'listen')
  const http = str(o, 'http')!
  const chaos = bool(o, 'chaos')
  const chaosProblem = chaos ? chaosAddressProblem(listen, http) : undefined
  if (chaosProblem)
    throw new UsageError(`Refusing --chaos: ${chaosProblem} (fault injection is for loopback test clusters)`)
  const adminTokenFile = str(o, 'admin-token-file')
  const exposed = chaosAddressProblem(listen, http)
  if (exposed && adminTokenFile === undefined)
    throw new UsageError(`Refusing to start: ${exposed}; ${ADMIN_TOKEN_REQUIRED}`)
  if (adminTokenFile !== undefined)
    await readAdminTokenFile(adminTokenFile).catch((e: unknown) => {
      throw new UsageError((e as Error).message)
    })
  const deployKeys = await Promise.all(strs(o, 'deploy-key').map(readDeployKey))
  const clusterKeyFile = str(o, 'cluster-key')
  const otlpEndpoint = str(o, 'otlp-endpoint')
  if (otlpEndpoint !== undefined && !/^https?:\/\/[^/]/.test(otlpEndpoint))
    throw new UsageError(`Bad --otlp-endpoint '${otlpEndpoint}': expected an http:// or https:// URL`)
  // Log lines written inside a call's span carry its trace and span ids (when tracing is on).
  const log = pino({ level: str(o, 'log-level')!, mixin: traceLogFields })
  const node = await startMeshNode(
    {
      dataDir: resolve(str(o, 'data')!),
      listen,
      seeds: strs(o, 'seed'),
      http,
      ...(chaos ? { chaos: true } : {}),
      ...(clusterKeyFile ? { clusterKeyFile } : {}),
      ...(adminTokenFile !== undefined ? { adminTokenFile } : {}),
      ...(otlpEndpoint !== undefined ? { otlpEndpoint } : {}),
      ...(deployKeys.length > 0 ? { actors: { deployKeys } } : {}),
      ...(replicaDeadTimeoutMs !== undefined ? { replicaDeadTimeoutMs } : {}),
      ...(snapshotEveryEntries !== undefined ? { snapshotEveryEntries } : {}),
    },
    log,
  )
  io.out.write(nextSteps(node))
  await untilSignal(node, log)
}

/** An Ed25519 public key file (PEM); a missing or wrong file is bad usage. */
async function readDeployKey(file: string): Promise<KeyObject> {
  try {
    return toPublicKey(await readFile(file, 'utf8'))
  } catch (e) {
    throw new UsageError(`Bad --deploy-key '${file}': ${(e as Error).message}`)
  }
}

/** What `start` prints once the node is up: where it is and what to do next. */
function nextSteps(node: MeshNode): string {
  const addr = node.host.getMultiaddrs()[0]?.toString() ?? ''
  // `bin/actormesh.js` is the CLI in a checkout (where `npm start` runs); installed, it is `actormesh`.
  const am = `bin/actormesh.js${node.url === DEFAULT_NODE_URL ? '' : ` --node ${node.url}`}`
  const cmd = (rest: string) => am.replace('bin/actormesh.js', `bin/actormesh.js ${rest}`)
  return [
    '',
    `ActorMesh node ${node.host.peerId.toString()} is up at ${node.url}`,
    `  health:   curl ${node.url}/healthz`,
    `  status:   ${cmd('status')}`,
    `  try it:   ${cmd('ns create counter --replicas 1')}`,
    `            bin/actormesh.js build examples/counter/assembly/index.ts`,
    `            ${cmd('deploy counter examples/counter/build/counter.wasm')}`,
    `            curl -X POST ${node.url}/v1/ns/counter/actors/c1/increment`,
    `  add a node: npm start -- --data ./data2 --listen /ip4/127.0.0.1/tcp/7071 --http 127.0.0.1:8081 --seed ${addr}`,
    '  a 3-node cluster with the examples deployed: npm run demo',
    '  stop:     Ctrl-C',
    '',
  ].join('\n')
}

/**
 * Waits for SIGTERM/SIGINT. The first stops gracefully (drain: leaderships handed over, then
 * close); a second one, of either kind, gives up on that and exits at once.
 */
function untilSignal(node: MeshNode, log: pino.Logger): Promise<void> {
  return new Promise<void>((done) => {
    let stopping = false
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
