/**
 * `actormesh demo` (`npm run demo`): a 3-node cluster on loopback in one command. It starts three
 * `actormesh start` child processes with a temporary data directory, waits until they formed
 * `_system`, creates the `chat` and `counter` namespaces, deploys the two examples (building them
 * first when their .wasm is missing or older than the source), prints where everything is, and on
 * Ctrl-C/SIGTERM stops the nodes (SIGTERM, a grace period, then SIGKILL) and removes the directory.
 *
 * The nodes run in their own process group, so a Ctrl-C in the terminal reaches only the demo,
 * which then stops them in order (a node that got the terminal's SIGINT too would take the demo's
 * SIGTERM as a second signal and skip its graceful stop).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, existsSync, statSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defaultOut } from './cli/build.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './cli/command.js'
import { nodeJson, nodeRequest, nsPaths } from './cli/http.js'
import { type OptionSpec, resolveOptions, str, wholeNumber } from './cli/options.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const cli = join(root, 'bin', 'actormesh.js')

/** The cluster's size. */
const DEMO_NODES = 3
/** How long one node may take to print its URL, in milliseconds. */
const NODE_START_TIMEOUT_MS = 60_000
/** How long the nodes may take to form `_system` and host the namespaces, in milliseconds. */
const CLUSTER_READY_TIMEOUT_MS = 120_000
/** How long a node may take to stop after SIGTERM before it is killed, in milliseconds. */
const STOP_GRACE_MS = 10_000
/** How often the demo looks whether the cluster is ready, in milliseconds. */
const POLL_MS = 200
/** Bytes of a node's recent output kept to explain a failure. */
const OUTPUT_TAIL_BYTES = 8_192
/** The examples the demo deploys, each into the namespace of its name. */
const EXAMPLES = ['chat', 'counter'] as const

const help = `Usage: actormesh demo [--base-port PORT] [--log-level LEVEL]

Starts a 3-node cluster on 127.0.0.1 with temporary data, deploys the chat and counter examples
into namespaces of those names and prints the URLs. Ctrl-C stops the nodes and removes the data.

Flags:
  --base-port PORT      HTTP ports PORT, PORT+1, PORT+2; a taken one falls back to a free port;
                        0: free ports for all      [ACTORMESH_BASE_PORT] (8080)
  --log-level LEVEL     the nodes' pino level (their logs go to <data dir>/nodeN.log) (warn)
${COMMON_FLAGS_HELP}
`

const options: Record<string, OptionSpec> = {
  'base-port': { type: 'string', default: '8080' },
  'log-level': { type: 'string', env: null, default: 'warn' },
}

/** One node process of the demo. */
interface DemoNode {
  n: number
  proc: ChildProcess
  url: string
  peer: string
  log: string
  exited: Promise<number | null>
  tail: () => string
}

/** `actormesh demo`. */
export const demoCommand: Command = {
  name: 'demo',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = resolveOptions(argv, options, { env: io.env })
    if (o.help) return void io.out.write(help)
    const basePort = wholeNumber(o, 'base-port', 0, 65_535 - (DEMO_NODES - 1))!
    const dir = await mkdtemp(join(tmpdir(), 'actormesh-demo-'))
    const nodes: DemoNode[] = []
    const stop = new AbortController()
    const onSignal = (signal: NodeJS.Signals) => {
      if (stop.signal.aborted) {
        io.err.write(`${signal} again: killing the nodes\n`)
        for (const node of nodes) node.proc.kill('SIGKILL')
      }
      stop.abort(new Error(signal))
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    let failure: unknown
    try {
      await runCluster(io, dir, basePort, str(o, 'log-level')!, nodes, stop.signal)
    } catch (e) {
      if (!stop.signal.aborted) failure = e
    } finally {
      io.out.write(`Stopping ${nodes.length} nodes…\n`)
      await Promise.all(nodes.map((node) => stopNode(node)))
      await rm(dir, { recursive: true, force: true })
      io.out.write(`Stopped; removed ${dir}\n`)
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
    if (failure !== undefined) throw failure
  },
}

/** Starts the cluster, prints the ready message and waits until a signal or a node's death. */
async function runCluster(
  io: CliIo,
  dir: string,
  basePort: number,
  logLevel: string,
  nodes: DemoNode[],
  signal: AbortSignal,
): Promise<void> {
  const ports = await choosePorts(basePort, io)
  io.out.write(`Starting ${DEMO_NODES} nodes (data in ${dir})…\n`)
  // The compiler runs here while the nodes start in their own processes.
  const modules = buildExamples(io)
  modules.catch(() => {}) // awaited below; a failure must not be unhandled meanwhile
  nodes.push(await startNode(1, dir, ports[0]!, [], logLevel, signal))
  const self = await nodeJson<{ self: { addrs: string[] } }>({ url: nodes[0]!.url }, { path: '/v1/members' })
  const seed = self.self.addrs[0]!
  for (let n = 2; n <= DEMO_NODES; n++)
    nodes.push(await startNode(n, dir, ports[n - 1]!, [seed], logLevel, signal))
  const died = Promise.race(nodes.map((node) => node.exited.then((code) => deathOf(node, code))))
  died.catch(() => {}) // raced below; the nodes' planned exit at the end must not be unhandled
  await Promise.race([prepare(io, nodes, await modules, signal), died])
  io.out.write(readyText(nodes, dir))
  await Promise.race([
    died,
    new Promise((_, reject) => signal.addEventListener('abort', reject, { once: true })),
  ])
}

/** The error a node that exited by itself ends the demo with. */
function deathOf(node: DemoNode, code: number | null): never {
  throw new Error(`Node ${node.n} exited (code ${code}); its last output:\n${node.tail()}`)
}

/** HTTP ports from `basePort` on; a taken one (or all, for 0) becomes 0: the node picks a free one. */
async function choosePorts(basePort: number, io: CliIo): Promise<number[]> {
  if (basePort === 0) return Array.from({ length: DEMO_NODES }, () => 0)
  const ports: number[] = []
  for (let i = 0; i < DEMO_NODES; i++) {
    const port = basePort + i
    const free = await portFree(port)
    if (!free) io.err.write(`port ${port} is taken: node ${i + 1} uses a free port instead\n`)
    ports.push(free ? port : 0)
  }
  return ports
}

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer()
    server.once('error', () => done(false))
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)))
  })
}

/** Starts node `n` and resolves once it printed its gateway URL. */
async function startNode(
  n: number,
  dir: string,
  port: number,
  seeds: string[],
  logLevel: string,
  signal: AbortSignal,
): Promise<DemoNode> {
  signal.throwIfAborted()
  const args = ['start', '--data', join(dir, `node${n}`), '--listen', '/ip4/127.0.0.1/tcp/0']
  args.push('--http', `127.0.0.1:${port}`, '--log-level', logLevel, ...seeds.flatMap((s) => ['--seed', s]))
  // Only flags: an ACTORMESH_* variable or config file meant for another node must not change these.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ACTORMESH_')))
  const proc = spawn(process.execPath, [cli, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env,
  })
  const log = join(dir, `node${n}.log`)
  const file = createWriteStream(log)
  let tail = ''
  let out = ''
  const keep = (d: Buffer) => {
    file.write(d)
    tail = (tail + d.toString()).slice(-OUTPUT_TAIL_BYTES)
  }
  proc.stderr!.on('data', keep)
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  void exited.then(() => file.end())
  const url = await new Promise<string>((resolveUrl, reject) => {
    const fail = (why: string) => reject(new Error(`Node ${n} did not start: ${why}; its output:\n${tail}`))
    const timer = setTimeout(() => fail(`no URL within ${NODE_START_TIMEOUT_MS} ms`), NODE_START_TIMEOUT_MS)
    proc.stdout!.on('data', (d: Buffer) => {
      keep(d)
      out += d.toString()
      const m = /health:\s+curl (\S+)\/healthz/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolveUrl(m[1]!)
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      fail(`exited with code ${code}`)
    })
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(signal.reason)
    })
  }).catch((e: unknown) => {
    proc.kill('SIGKILL')
    throw e
  })
  const peer = /ActorMesh node (\S+) is up/.exec(out)?.[1] ?? ''
  return { n, proc, url, peer, log, exited, tail: () => tail }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. */
async function stopNode(node: DemoNode): Promise<void> {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return
  node.proc.kill('SIGTERM')
  const timer = setTimeout(() => node.proc.kill('SIGKILL'), STOP_GRACE_MS)
  await node.exited
  clearTimeout(timer)
}

/** The examples' .wasm files, built when missing or older than their source or the SDK. */
async function buildExamples(io: CliIo): Promise<Map<string, string>> {
  const built = new Map<string, string>()
  const sdk = statSync(join(root, 'actors', 'sdk', 'assembly', 'index.ts')).mtimeMs
  for (const name of EXAMPLES) {
    const src = join(root, 'examples', name, 'assembly', 'index.ts')
    const out = defaultOut(src)
    const fresh = existsSync(out) && statSync(out).mtimeMs >= Math.max(sdk, statSync(src).mtimeMs)
    if (!fresh) {
      io.out.write(`Building the ${name} example into ${out}…\n`)
      const { buildActor } = await import('../actors/build.js')
      await buildActor(src, out)
    }
    built.set(name, out)
  }
  return built
}

/**
 * Waits until `_system` has every node as a voter, creates the example namespaces, deploys the
 * examples, and waits until the counter answers through every node.
 */
async function prepare(io: CliIo, nodes: DemoNode[], modules: Map<string, string>, signal: AbortSignal) {
  const first = { url: nodes[0]!.url }
  await until(signal, 'every node to join _system', async () => {
    const st = await nodeJson<{ system: { voters: string[] } }>(first, { path: '/v1/status' })
    return st.system.voters.length >= DEMO_NODES
  })
  for (const name of EXAMPLES) {
    const created = await nodeRequest(first, {
      method: 'POST',
      path: ['/v1/ns', '/v1/namespaces'],
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, replicationFactor: DEMO_NODES }),
      retryMs: CLUSTER_READY_TIMEOUT_MS,
      signal,
    })
    await created.body?.cancel()
    const deployed = await nodeJson<{ version: number }>(first, {
      method: 'PUT',
      path: nsPaths(name, '/module'),
      body: new Uint8Array(await readFile(modules.get(name)!)),
      retryMs: CLUSTER_READY_TIMEOUT_MS,
      signal,
    })
    io.out.write(
      `Namespace '${name}' created on ${DEMO_NODES} nodes; example deployed (version ${deployed.version})\n`,
    )
  }
  for (const node of nodes) {
    const get = await nodeRequest(
      { url: node.url },
      {
        method: 'POST',
        path: nsPaths('counter', '/actors/c1/get?readonly=true'),
        retryMs: CLUSTER_READY_TIMEOUT_MS,
        signal,
      },
    )
    await get.body?.cancel()
  }
}

/** Polls `probe` until it is true; errors while polling count as "not yet". */
async function until(signal: AbortSignal, what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS
  for (;;) {
    signal.throwIfAborted()
    if (await probe().catch(() => false)) return
    if (Date.now() > deadline)
      throw new Error(`Gave up waiting for ${what} after ${CLUSTER_READY_TIMEOUT_MS} ms`)
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

/** What the demo prints once the cluster is ready (the test waits for its first line). */
function readyText(nodes: DemoNode[], dir: string): string {
  const [a, b] = [nodes[0]!.url, nodes[1]!.url]
  const ws = a.replace(/^http/, 'ws')
  return `
ActorMesh demo ready: ${nodes.length} nodes, namespaces chat and counter. Ctrl-C stops everything.

${nodes.map((n) => `  node ${n.n}  ${n.url}   status ${n.url}/v1/status   pid ${n.proc.pid}   log ${n.log}`).join('\n')}
  data     ${dir} (removed on exit)

Try it:
  curl -X POST ${a}/v1/ns/counter/actors/c1/increment          # any node: the namespace's leader runs it
  curl -X POST ${b}/v1/ns/counter/actors/c1/get
  websocat ${ws}/v1/ns/chat/actors/lobby/ws                    # the room's posts as they commit
  node -e "new WebSocket('${ws}/v1/ns/chat/actors/lobby/ws').onmessage = (e) => console.log(e.data)"
  curl -X POST ${b}/v1/ns/chat/actors/lobby/join -d ann
  curl -X POST ${b}/v1/ns/chat/actors/lobby/post -d '{"from":"ann","text":"hi"}'
  chat page: ${a}/chat/
  metrics:   ${a}/metrics   (Prometheus text; every node has its own)
  actormesh status --node ${a}
  kill the leader: actormesh status shows it; kill -9 its pid and call again through another node
`
}
