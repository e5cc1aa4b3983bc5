/**
 * WebSocket fan-out benchmark: three real `actormesh start` processes on loopback, one chat
 * namespace (replication factor 3), and a separate load process (bench/ws-load.ts) holding 10,000
 * WebSockets (1,000 with --quick) to one room, spread evenly over the three nodes. It posts one
 * message every `clients / 10` ms (at least 200: a second for 10,000 clients, so that one post's
 * fan-out is done before the next) over HTTP, round-robin over the nodes, and times on its own
 * clock each post's acknowledgment and each client's delivery:
 *
 * - `ws.fanout_p50_ms`, `ws.fanout_p99_ms`: acknowledgment → delivery at one client, over every
 *   (client, post) pair; a delivery that beats the acknowledgment counts as 0.
 * - `ws.fanout_all_p99_ms`: acknowledgment → delivery at the last client of a post, over posts.
 * - `ws.open_s`: opening and subscribing every socket.
 * - `ws.node_deliver_p99_ms`: on the nodes, the time one push took to be written to every local
 *   socket of the room (the worst node's p99; from /v1/status).
 * - `ws.tcp_floor_p50_ms`, `ws.tcp_floor_p99_ms`: the same fan-out with nothing of ActorMesh in it
 *   (bench/tcp-floor.ts: three writer processes, one plain-TCP frame to each of the clients, read
 *   by a process laid out like the load process), after the nodes are stopped — what the kernel
 *   and Node's sockets alone cost on this machine, the floor under `ws.fanout_*`.
 *
 * All four processes share the machine's two cores, so the load process's own event loop (it
 * parses every delivery) is part of every figure.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { WsStats } from '../../node/ws/index.js'
import { exampleModule } from '../../test/actors/examples.js'
import { call, createNamespace, deploy } from '../../test/integration/calls.js'
import { getJson, ProcessCluster } from '../../test/integration/cluster.js'
import type { TcpFloorConfig, TcpFloorResult } from '../tcp-floor.js'
import type { BenchFigure, BenchGroup } from '../types.js'
import type { WsLoadConfig, WsLoadResult } from '../ws-load.js'

const root = join(import.meta.dirname, '..', '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
const loadScript = join(root, 'bench', 'ws-load.ts')
const floorScript = join(root, 'bench', 'tcp-floor.ts')

/** File descriptors one socket costs: its end in the load process, and its end in a node. */
const FDS_PER_SOCKET = 1
/** Descriptors kept free in each process for everything else (libp2p, LibSQL, the HTTP agent). */
const FDS_SPARE = 1_000

/**
 * Runs a load script (`node --import tsx script '<config>'`) and resolves with its `result` line;
 * its `ready` line is reported through `say`.
 */
async function runScript<R>(
  script: string,
  config: WsLoadConfig | TcpFloorConfig,
  say: (line: string) => void,
): Promise<R> {
  const proc = spawn(nodeBin, ['--import', 'tsx', script, JSON.stringify(config)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8_192)
  })
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  let result: R | undefined
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return
    const event = JSON.parse(line) as { event: string; openMs?: number }
    if (event.event === 'ready') say(`${config.clients} sockets open and subscribed in ${event.openMs} ms`)
    if (event.event === 'result') result = event as R
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 600_000)
  const code = await exited
  clearTimeout(timer)
  if (!result) throw new Error(`${script} exited with ${code} and no result: ${stderr}`)
  return result
}

/** The most sockets that fit the descriptor limit of the load process (each node holds a third). */
async function socketsThatFit(wanted: number, say: (line: string) => void): Promise<number> {
  const out = await new Promise<string>((resolve) => {
    const p = spawn('sh', ['-c', 'ulimit -n'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let s = ''
    p.stdout!.on('data', (d: Buffer) => {
      s += d.toString()
    })
    p.once('exit', () => resolve(s.trim()))
  })
  const limit = out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out)
  const fit = Math.floor((limit - FDS_SPARE) / FDS_PER_SOCKET)
  if (fit >= wanted) {
    say(`ulimit -n ${out}: ${wanted} sockets fit (the load process holds all, each node a third)`)
    return wanted
  }
  say(`ulimit -n ${out}: only ${fit} of ${wanted} sockets fit; using ${fit}`)
  return fit
}

/** What one run is: its clients, posts, the pause between posts, and the load process's socket threads. */
interface WsRun {
  clients: number
  posts: number
  intervalMs: number
  threads: number
}

const run: BenchGroup = async ({ quick, log: say }) => {
  const clients = await socketsThatFit(quick ? 1_000 : 10_000, say)
  const shape: WsRun = {
    clients,
    posts: quick ? 20 : 50,
    intervalMs: Math.max(200, Math.round(clients / 10)),
    threads: Math.min(4, availableParallelism()),
  }
  const figures = await fanout(shape, say)
  const { posts, intervalMs, threads } = shape
  const floor = await runScript<TcpFloorResult>(
    floorScript,
    // A chat event frame is about 120 bytes; the rounds are spaced so that one is read before the next.
    { clients, writers: 3, rounds: posts, intervalMs: Math.min(intervalMs, 500), frameBytes: 120, threads },
    say,
  )
  say(
    `plain TCP, the same fan-out without ActorMesh: p50 ${floor.p50Ms.toFixed(1)} ms, p99 ${floor.p99Ms.toFixed(1)} ms, ` +
      `last client p99 ${floor.allP99Ms.toFixed(1)} ms`,
  )
  const floorNote = `${clients} plain TCP sockets, 3 writer processes, a reader with ${threads} threads: the floor under ws.fanout_*`
  return [
    ...figures,
    { key: 'ws.tcp_floor_p50_ms', value: round(floor.p50Ms), unit: 'ms', note: floorNote },
    { key: 'ws.tcp_floor_p99_ms', value: round(floor.p99Ms), unit: 'ms', note: floorNote },
  ]
}

/** Three nodes and the load process: the fan-out figures. */
async function fanout(
  { clients, posts, intervalMs, threads }: WsRun,
  say: (line: string) => void,
): Promise<BenchFigure[]> {
  const cluster = new ProcessCluster()
  try {
    await cluster.start(3)
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]]
    await createNamespace(a, 'chat')
    await deploy(b, 'chat', await exampleModule('chat'))
    await call(a, 'chat', 'lobby', 'join', 'bench')
    const cpuBefore = cluster.nodes.map((n) => cpuSeconds(n.proc.pid))
    const r = await runScript<WsLoadResult>(
      loadScript,
      {
        urls: cluster.nodes.map((n) => n.url),
        ns: 'chat',
        actor: 'lobby',
        clients,
        openBatch: 250,
        posts,
        intervalMs,
        drainTimeoutMs: 60_000,
        threads,
      },
      say,
    )
    const nodeCpu = cluster.nodes.map((n, i) => {
      const [user, system] = cpuSeconds(n.proc.pid).map((v, j) => v - cpuBefore[i]![j]!)
      return `${user!.toFixed(1)} user + ${system!.toFixed(1)} sys`
    })
    const delivers = await Promise.all(
      cluster.nodes.map(async (n) => ((await getJson(`${n.url}/v1/status`)) as { ws: WsStats }).ws.deliver),
    )
    say(
      `writing one post to a node's sockets: ${delivers.map((d) => `p50 ${d.p50Ms} / p99 ${d.p99Ms} ms`).join(', ')}`,
    )
    say(
      `CPU during the run: load process ${r.cpuS.toFixed(1)} s (${threads} socket threads), nodes ${nodeCpu.join(' / ')} s`,
    )
    say(
      `${r.clients} clients × ${r.posts} posts: ${r.deliveries} deliveries, ${r.missing} missing, ` +
        `${r.duplicates} duplicates, ${r.closed} closed; ${r.beforeAck} arrived before the ack; ` +
        `ack→delivery p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms; ` +
        `ack→last client p50 ${r.allP50Ms.toFixed(1)} ms, p99 ${r.allP99Ms.toFixed(1)} ms; post round trip p50 ${r.ackP50Ms.toFixed(1)} ms`,
    )
    const note = `${r.clients} clients on 3 nodes, 1 room, a post every ${intervalMs} ms; load in its own process (${threads} threads)`
    return [
      { key: 'ws.fanout_p50_ms', value: round(r.p50Ms), unit: 'ms', note },
      { key: 'ws.fanout_p99_ms', value: round(r.p99Ms), unit: 'ms', target: '<= 150', note },
      {
        key: 'ws.fanout_all_p99_ms',
        value: round(r.allP99Ms),
        unit: 'ms',
        note: 'ack → the last client has it',
      },
      {
        key: 'ws.open_s',
        value: round(r.openMs / 1_000),
        unit: 's',
        note: `${r.clients} sockets, 250 at a time`,
      },
      {
        key: 'ws.node_deliver_p99_ms',
        value: Math.max(...delivers.map((d) => d.p99Ms)),
        unit: 'ms',
        note: `a push written to a node's ${Math.round(r.clients / 3)} sockets (worst node)`,
      },
    ] satisfies BenchFigure[]
  } finally {
    await cluster.stop()
  }
}

/** User and system CPU seconds of a process so far (Linux /proc; zeros elsewhere). */
function cpuSeconds(pid: number | undefined): [number, number] {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return [Number(fields[11]) / 100, Number(fields[12]) / 100]
  } catch {
    return [0, 0]
  }
}

function round(v: number): number {
  return Math.round(v * 10) / 10
}

export default run
