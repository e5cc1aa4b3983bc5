/**
 * Starts real `actormesh start` processes on loopback and drives them only through HTTP and
 * signals, as an operator would. Every process is killed when the test ends.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..', '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
/**
 * The CLI each node runs: the checkout's `bin/actormesh.js` (TypeScript through tsx), or the file
 * `ACTORMESH_CLI` names (the benchmarks set it to the build, `dist/node/cli.js`).
 */
const cli = process.env.ACTORMESH_CLI ?? join(root, 'bin', 'actormesh.js')
/** Extra flags for each node's `node` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile a bench). */
const nodeFlags = (process.env.ACTORMESH_NODE_FLAGS ?? '').split(' ').filter(Boolean)

/** One node process of a test cluster. */
export interface ClusterNode {
  dataDir: string
  url: string
  peer: string
  /** The libp2p address others use as a seed (with /p2p/). */
  addr: string
  proc: ChildProcess
  exited: Promise<number | null>
  output: () => string
}

/** One namespace as `GET /v1/namespaces` shows it. */
export interface NamespaceView {
  name: string
  voters: string[]
  learners: string[]
  leader: string
}

export interface MemberView {
  peer: string
  state: 'alive' | 'suspect' | 'dead'
}

/** A set of node processes sharing one temp root. */
export class ProcessCluster {
  readonly nodes: ClusterNode[] = []
  private root = ''

  async start(count: number, extraArgs: string[] = []): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), 'am-cluster-'))
    const first = await this.startNode(join(this.root, 'n0'), [], extraArgs)
    for (let i = 1; i < count; i++) await this.startNode(join(this.root, `n${i}`), [first.addr], extraArgs)
  }

  /** Starts a node on `dataDir` (a new one, or a restart of a killed one). */
  async startNode(
    dataDir: string,
    seeds: string[],
    extraArgs: string[] = [],
    listen = '/ip4/127.0.0.1/tcp/0',
  ): Promise<ClusterNode> {
    const args = [
      ...nodeFlags,
      cli,
      'start',
      '--data',
      dataDir,
      '--listen',
      listen,
      '--http',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      ...extraArgs,
    ]
    for (const s of seeds) args.push('--seed', s)
    const proc = spawn(nodeBin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    proc.stderr!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
    const up = async () => {
      const url = await waitFor(
        () => /health:\s+curl (\S+)\/healthz/.exec(out)?.[1],
        () => `node on ${dataDir} to start; output:\n${out}`,
        30_000,
        () => proc.exitCode !== null,
      )
      return {
        url,
        self: (await getJson(`${url}/v1/members`)) as { self: { peer: string; addrs: string[] } },
      }
    }
    // A node that never came up is not in `nodes`, so stop() would leave it running: end it here.
    const { url, self } = await up().catch(async (e: unknown) => {
      proc.kill('SIGKILL')
      await exited
      throw e
    })
    const node: ClusterNode = {
      dataDir,
      url,
      peer: self.self.peer,
      addr: self.self.addrs[0]!,
      proc,
      exited,
      output: () => out,
    }
    this.nodes.push(node)
    return node
  }

  async members(node: ClusterNode): Promise<MemberView[]> {
    return ((await getJson(`${node.url}/v1/members`)) as { members: MemberView[] }).members
  }

  /** kill -9: no cleanup, like a crash or a power cut. */
  async kill(node: ClusterNode): Promise<void> {
    node.proc.kill('SIGKILL')
    await node.exited
    this.nodes.splice(this.nodes.indexOf(node), 1)
  }

  /** SIGTERM: a graceful stop (leaderships handed over first); resolves with the exit code. */
  async terminate(node: ClusterNode): Promise<number | null> {
    node.proc.kill('SIGTERM')
    const code = await node.exited
    this.nodes.splice(this.nodes.indexOf(node), 1)
    return code
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.splice(0)) {
      // A profiled node must exit by itself to write its profile.
      if (n.proc.exitCode === null) n.proc.kill(nodeFlags.length > 0 ? 'SIGTERM' : 'SIGKILL')
      await n.exited
    }
    if (this.root) await rm(this.root, { recursive: true, force: true })
  }
}

export async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  return res.json()
}

/**
 * Polls `probe` until it returns a value (not undefined/false), failing with `what()` after
 * `timeoutMs`, or at once when `giveUp()` says the awaited thing can no longer happen.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: () => string,
  timeoutMs = 30_000,
  giveUp: () => boolean = () => false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let v: T | undefined | false
    try {
      v = await probe()
    } catch {
      v = undefined
    }
    if (v !== undefined && v !== false) return v
    if (giveUp() || Date.now() > deadline) throw new Error(`Timed out waiting for ${what()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
