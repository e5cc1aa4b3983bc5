/**
 * The chaos cluster: N real `actormesh start --chaos` processes on loopback, each with fixed ports
 * (so a node restarted after kill -9 comes back at the same addresses with the same data), driven
 * only through HTTP and signals: kill -9 and restart, SIGSTOP/SIGCONT, fault tables.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { FaultTable } from '../node/chaos.js'
import { loadOrCreatePeerKey } from '../node/p2p/peer-key.js'
import { getJson } from './http.js'

const root = join(import.meta.dirname, '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
const cli = join(root, 'bin', 'actormesh.js')

/** How long a node may take to come up, in milliseconds (2 cores, tsx compiling on start). */
export const NODE_START_TIMEOUT_MS = 60_000
/** Bytes of a node's recent output kept in memory for a failure report. */
const OUTPUT_TAIL_BYTES = 16 * 1024

/** Where a node is in its life. */
export type NodeState = 'up' | 'killed' | 'paused' | 'removed'

/** One node of the cluster, by stable index. */
export interface ChaosNode {
  index: number
  dataDir: string
  httpPort: number
  p2pPort: number
  url: string
  peer: string
  /** libp2p address with /p2p/, for seeding. */
  addr: string
  state: NodeState
  proc: ChildProcess | undefined
  exited: Promise<number | null>
  /** The last few KiB of its output. */
  tail: () => string
}

export interface ChaosClusterOptions {
  /** Directory for the nodes' data directories. */
  dir: string
  /** Directory for the nodes' logs (`node-<index>.log`). */
  logDir: string
  /** Extra `actormesh start` flags for every node. */
  args?: string[]
  /** The nodes' log level (default warn). */
  logLevel?: string
  /** Told about every node lifecycle event, for the timeline. */
  onEvent?: (event: { kind: string; node: number; detail?: string }) => void
}

/** Ports are drawn below the OS's ephemeral range, which other processes' port-0 binds use. */
const PORT_MIN = 20_000
const PORT_MAX = 32_000

/** A TCP port on loopback that is free now (a tiny window remains for another process to take it). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN))
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer()
      srv.once('error', () => resolve(false))
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
    })
    if (free) return port
  }
}

/** Clusters with processes that may still run: killed when the harness itself exits. */
const live = new Set<ChaosCluster>()
process.once('exit', () => {
  for (const c of live) c.killNow()
})

export class ChaosCluster {
  readonly nodes: ChaosNode[] = []
  private readonly logs = new Map<number, WriteStream>()
  private started = false

  constructor(private readonly options: ChaosClusterOptions) {
    live.add(this)
  }

  /** SIGKILLs every process at once, without waiting (the harness is exiting). */
  killNow(): void {
    for (const n of this.nodes) {
      if (n.state === 'paused') n.proc?.kill('SIGCONT')
      n.proc?.kill('SIGKILL')
    }
  }

  /**
   * Starts `count` nodes at once: their peer keys are made first, so every address is known in
   * advance; the first node bootstraps the cluster (no seeds), the others are seeded with it and
   * keep dialling until it is up.
   */
  async start(count: number): Promise<void> {
    await mkdir(this.options.dir, { recursive: true })
    await mkdir(this.options.logDir, { recursive: true })
    const nodes: ChaosNode[] = []
    for (let i = 0; i < count; i++) nodes.push(await this.reserve())
    await Promise.all(nodes.map((n, i) => this.launch(n, i === 0 ? [] : [nodes[0]!.addr])))
    this.started = true
  }

  /** Adds a new node (fresh data dir), seeded with every node that is up. */
  async add(): Promise<ChaosNode> {
    const node = await this.reserve()
    await this.launch(node, this.seeds(node))
    if (this.started) this.options.onEvent?.({ kind: 'add', node: node.index })
    return node
  }

  /** A new node slot: index, data dir with a fresh peer key, free ports; not started. */
  private async reserve(): Promise<ChaosNode> {
    // The slot is taken before any await: concurrent adds get distinct indexes and data dirs.
    const index = this.nodes.length
    const node: ChaosNode = {
      index,
      dataDir: join(this.options.dir, `n${index}`),
      httpPort: 0,
      p2pPort: 0,
      url: '',
      peer: '',
      addr: '',
      state: 'killed',
      proc: undefined,
      exited: Promise.resolve(null),
      tail: () => '',
    }
    this.nodes.push(node)
    node.httpPort = await freePort()
    node.p2pPort = await freePort()
    // The node would make this key on first start; making it here tells us its peer id now.
    node.peer = peerIdFromPrivateKey(await loadOrCreatePeerKey(node.dataDir)).toString()
    node.addr = `/ip4/127.0.0.1/tcp/${node.p2pPort}/p2p/${node.peer}`
    node.url = `http://127.0.0.1:${node.httpPort}`
    return node
  }

  private seeds(node: ChaosNode): string[] {
    return this.nodes.filter((n) => n !== node && n.state === 'up').map((n) => n.addr)
  }

  /** Nodes currently up (not killed, paused or removed). */
  up(): ChaosNode[] {
    return this.nodes.filter((n) => n.state === 'up')
  }

  /** Nodes that are running, paused or not (a paused one still holds its replicas). */
  members(): ChaosNode[] {
    return this.nodes.filter((n) => n.state === 'up' || n.state === 'paused')
  }

  byPeer(peer: string): ChaosNode | undefined {
    return this.nodes.find((n) => n.peer === peer)
  }

  /** kill -9: no cleanup, like a crash or a power cut. */
  async kill(node: ChaosNode, removed = false): Promise<void> {
    if (node.state === 'killed' || node.state === 'removed') return
    node.proc?.kill('SIGKILL')
    await node.exited
    node.state = removed ? 'removed' : 'killed'
    this.options.onEvent?.({ kind: removed ? 'remove' : 'kill', node: node.index })
  }

  /** Starts a killed node again on its data dir and ports. */
  async restart(node: ChaosNode): Promise<void> {
    if (node.state !== 'killed') return
    await this.launch(node, this.seeds(node))
    this.options.onEvent?.({ kind: 'restart', node: node.index })
  }

  /** SIGSTOP: the process freezes with its sockets open. */
  pause(node: ChaosNode): void {
    if (node.state !== 'up') return
    node.proc?.kill('SIGSTOP')
    node.state = 'paused'
    this.options.onEvent?.({ kind: 'pause', node: node.index })
  }

  /** SIGCONT. */
  resume(node: ChaosNode): void {
    if (node.state !== 'paused') return
    node.proc?.kill('SIGCONT')
    node.state = 'up'
    this.options.onEvent?.({ kind: 'resume', node: node.index })
  }

  /** Sets a node's fault table (throws when the node does not answer). */
  async setFaults(node: ChaosNode, table: FaultTable): Promise<void> {
    const res = await fetch(`${node.url}/v1/chaos/faults`, {
      method: 'PUT',
      body: JSON.stringify(table),
      signal: AbortSignal.timeout(5_000),
    })
    if (res.status !== 200)
      throw new Error(`Node ${node.index} refused a fault table: ${res.status} ${await res.text()}`)
  }

  /** Clears the fault tables of every node that is up; nodes that do not answer are skipped. */
  async healNetwork(): Promise<void> {
    const empty: FaultTable = { block: [], delay: {}, drop: {} }
    await Promise.all(this.up().map((n) => this.setFaults(n, empty).catch(() => {})))
  }

  /** Kills every process (resuming paused ones first so they die cleanly) and closes the logs. */
  async stop(): Promise<void> {
    for (const n of this.nodes) {
      if (n.state === 'paused') n.proc?.kill('SIGCONT')
      if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL')
      await n.exited
    }
    for (const log of this.logs.values()) log.end()
    live.delete(this)
  }

  /**
   * Starts the node's process and waits until it answers as itself. A port taken meanwhile by
   * another process (the node exits with EADDRINUSE) is replaced by a fresh one, up to 3 times.
   */
  private async launch(node: ChaosNode, seeds: string[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.spawnNode(node, seeds)
        node.state = 'up'
        return
      } catch (e) {
        if (attempt >= 3 || !/EADDRINUSE/.test(node.tail())) throw e
        node.httpPort = await freePort()
        node.p2pPort = await freePort()
        node.addr = `/ip4/127.0.0.1/tcp/${node.p2pPort}/p2p/${node.peer}`
        node.url = `http://127.0.0.1:${node.httpPort}`
      }
    }
  }

  private async spawnNode(node: ChaosNode, seeds: string[]): Promise<void> {
    const args = [
      cli,
      'start',
      '--chaos',
      '--data',
      node.dataDir,
      '--listen',
      `/ip4/127.0.0.1/tcp/${node.p2pPort}`,
      '--http',
      `127.0.0.1:${node.httpPort}`,
      '--log-level',
      this.options.logLevel ?? 'warn',
      ...(this.options.args ?? []),
    ]
    for (const s of seeds) args.push('--seed', s)
    const proc = spawn(nodeBin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let log = this.logs.get(node.index)
    if (!log) {
      log = createWriteStream(join(this.options.logDir, `node-${node.index}.log`), { flags: 'a' })
      this.logs.set(node.index, log)
    }
    let tail = ''
    const take = (d: Buffer) => {
      log.write(d)
      tail = (tail + d.toString()).slice(-OUTPUT_TAIL_BYTES)
    }
    proc.stdout!.on('data', take)
    proc.stderr!.on('data', take)
    node.proc = proc
    node.tail = () => tail
    node.exited = new Promise((r) => proc.once('exit', (code) => r(code)))
    const deadline = Date.now() + NODE_START_TIMEOUT_MS
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`Node ${node.index} exited while starting:\n${tail}`)
      if (Date.now() > deadline) {
        proc.kill('SIGKILL')
        throw new Error(`Node ${node.index} did not come up within ${NODE_START_TIMEOUT_MS} ms:\n${tail}`)
      }
      const members = (await getJson(`${node.url}/v1/members`, 1_000).catch(() => undefined)) as
        | { self: { peer: string } }
        | undefined
      // Another process on this port would answer as another peer: not ours.
      if (members?.self.peer === node.peer) return
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
