/**
 * Cluster benchmark: three real `actormesh start` processes on loopback, load from a fourth
 * (bench/load-client.ts). 10 namespaces (replication factor 3) run the counter actor; 1,000
 * actors are spread over them. Figures:
 *
 * - `cluster.write_ops_per_s`, `cluster.write_p50_ms`, `cluster.write_p99_ms`: 256 clients (64
 *   with --quick) calling `increment`, each call sent to the next gateway round-robin (so two in
 *   three are forwarded to the leader); `_leader_direct`: the same, sent straight to the leader.
 * - `cluster.write_p50_ms_1client`, `cluster.write_p99_ms_1client`: one client.
 * - `cluster.failover_ms`: 16 clients write to one namespace through the two other nodes; its
 *   leader is killed with SIGKILL; the time from the kill to the first acknowledged call sent
 *   after it. p50 of 3 runs (1 with --quick); the killed node restarts in between.
 *
 * The etcd figures beside ours come from the comparison run at the group's end (bench/etcd.ts: the
 * same workload against a 3-member etcd, once our nodes are stopped) when etcd is installed, else
 * from the constants below, measured by hand on the same machine; the note column says which.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { exampleModule } from '../../test/actors/examples.js'
import { createNamespace, deploy } from '../../test/integration/calls.js'
import {
  type ClusterNode,
  getJson,
  type MemberView,
  type NamespaceView,
  ProcessCluster,
  waitFor,
} from '../../test/integration/cluster.js'
import { etcdFigures, etcdThisRun, markEtcdReported, type WriteWorkload } from '../etcd.js'
import type { LoadConfig, LoadResult } from '../load-client.js'
import type { BenchFigure, BenchGroup } from '../types.js'

const root = join(import.meta.dirname, '..', '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
const loadClient = join(root, 'bench', 'load-client.ts')

/**
 * The figures for etcd 3.4 with 3 members (its native gRPC API): writes/s and p99 at 256
 * clients, p50 of one client. Used only when etcd is not installed.
 */
const ETCD = { writesPerS: 8_373, p99Ms: 78, p50Ms1Client: 0.94 }
const SEED = 20_261_123
const NAMESPACES = 10
const ACTORS = 1_000
const FAILOVER_CLIENTS = 16
/** A failover run gives up after this long without an acknowledged call. */
const FAILOVER_WAIT_MS = 60_000
/** Attempts to pick a leader that is still the leader when the load is running. */
const FAILOVER_PICKS_MAX = 5
/** Linux reports /proc CPU times in clock ticks of 1/100 s (USER_HZ) on every architecture it runs on. */
const CLOCK_TICKS_PER_S = 100

type LoadEvent = { event: string; firstAckMs?: number; acked?: number } & Partial<LoadResult>

/** A running load-client process: its JSON events, commands to it, its result. */
class LoadProcess {
  private readonly proc: ChildProcess
  private readonly events: LoadEvent[] = []
  private readonly waiters = new Set<() => void>()
  private readonly exited: Promise<number | null>
  private stderr = ''
  private gone = false

  constructor(config: Partial<LoadConfig>) {
    this.proc = spawn(nodeBin, ['--import', 'tsx', loadClient, JSON.stringify(config)], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.exited = new Promise((r) => {
      this.proc.once('exit', (code) => r(code))
      this.proc.once('error', (e) => {
        this.stderr += String(e)
        r(null)
      })
    })
    this.exited.then(() => {
      this.gone = true
      this.wake()
    })
    // A command written after the process ended fails with EPIPE; its exit is reported already.
    this.proc.stdin!.on('error', () => {})
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8_192)
    })
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return
      this.events.push(JSON.parse(line) as LoadEvent)
      this.wake()
    })
  }

  send(cmd: { cmd: 'mark'; atMs: number } | { cmd: 'stop' }): void {
    this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`)
  }

  /** The first event named `name`; fails if the process exits first or after `timeoutMs`. */
  next(name: string, timeoutMs: number): Promise<LoadEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(new Error(`Timed out waiting for load-client '${name}'`)),
        timeoutMs,
      )
      const check = () => {
        const i = this.events.findIndex((e) => e.event === name)
        if (i >= 0) return done(undefined, this.events.splice(i, 1)[0])
        if (this.gone) done(new Error(`load-client exited before '${name}': ${this.stderr}`))
      }
      const done = (err?: Error, event?: LoadEvent) => {
        clearTimeout(timer)
        this.waiters.delete(check)
        if (err) reject(err)
        else resolve(event!)
      }
      this.waiters.add(check)
      check()
    })
  }

  async result(timeoutMs: number): Promise<LoadResult> {
    return (await this.next('result', timeoutMs)) as LoadResult
  }

  async kill(): Promise<void> {
    if (!this.gone) this.proc.kill('SIGKILL')
    await this.exited
  }

  private wake(): void {
    for (const w of [...this.waiters]) w()
  }
}

/** User + system CPU of process `pid` so far, in milliseconds (fields 14 and 15 of /proc/<pid>/stat). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1_000) / CLOCK_TICKS_PER_S
}

const sumCpuMs = async (pids: number[]): Promise<number> =>
  (await Promise.all(pids.map(cpuMs))).reduce((a, b) => a + b, 0)

/**
 * Runs one load to its end and returns its result line, with the CPU the node processes `pids`
 * spent per call acknowledged after the warm-up (Linux /proc; NaN elsewhere).
 */
export async function load(
  config: Partial<LoadConfig>,
  pids: number[],
): Promise<LoadResult & { nodeCpuMsPerCall: number }> {
  const p = new LoadProcess(config)
  try {
    const budget = (config.warmupMs ?? 0) + (config.durationMs ?? 0) + 120_000
    const window = await p.next('window', budget)
    const cpuBefore = await sumCpuMs(pids).catch(() => Number.NaN)
    const r = await p.result(budget)
    const cpuAfter = await sumCpuMs(pids).catch(() => Number.NaN)
    return { ...r, nodeCpuMsPerCall: (cpuAfter - cpuBefore) / (r.acked - (window.acked ?? 0)) }
  } finally {
    await p.kill()
  }
}

async function namespaceViews(node: ClusterNode): Promise<NamespaceView[]> {
  return ((await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }).namespaces
}

/** Namespace → leader peer, once every node lists every name with the same known leader. */
async function agreedLeaders(nodes: ClusterNode[], names: string[]): Promise<Record<string, string>> {
  let seen = ''
  return waitFor(
    async () => {
      const views = await Promise.all(nodes.map(namespaceViews))
      const leaders: Record<string, string> = {}
      for (const name of names) {
        const led = views.map((v) => v.find((n) => n.name === name)?.leader ?? '')
        seen = `${name}: ${led.map((l) => l.slice(-6) || '-').join('/')}`
        if (led[0] === '' || led.some((l) => l !== led[0])) return undefined
        leaders[name] = led[0]!
      }
      return leaders
    },
    () => `every node to agree on a leader for each namespace (last: ${seen})`,
    120_000,
  )
}

/**
 * The leaders once the balancer is done: every node agrees, and none leads more than its fair
 * share (`ceil(names / nodes)`), for two reads a balancing round apart. A load started before that
 * measures the balancer's moves (each a burst of retried 503s), not the steady state. Gives up
 * after `timeoutMs` and returns the leaders as they are (the caller says so).
 */
async function balancedLeaders(
  nodes: ClusterNode[],
  names: string[],
  timeoutMs = 60_000,
): Promise<{ leaders: Record<string, string>; balanced: boolean }> {
  const fair = Math.ceil(names.length / nodes.length)
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    const leaders = await agreedLeaders(nodes, names)
    const spread = nodes.map((n) => Object.values(leaders).filter((l) => l === n.peer).length)
    const key = JSON.stringify(leaders)
    if (Math.max(...spread) <= fair && key === last) return { leaders, balanced: true }
    if (Date.now() > deadline) return { leaders, balanced: false }
    last = Math.max(...spread) <= fair ? key : ''
    await new Promise((r) => setTimeout(r, 2_500))
  }
}

/** Every node sees every other alive. */
async function allAlive(cluster: ProcessCluster): Promise<void> {
  await waitFor(
    async () => {
      for (const n of cluster.nodes) {
        const members = await cluster.members(n)
        const others = cluster.nodes.filter((o) => o !== n).map((o) => o.peer)
        if (!others.every((p) => members.some((m: MemberView) => m.peer === p && m.state === 'alive')))
          return false
      }
      return true
    },
    () => 'every node to see the others alive',
    120_000,
  )
}

export function describe(r: LoadResult & { nodeCpuMsPerCall: number }): string {
  const errs = r.errors > 0 ? ` ${JSON.stringify(r.errorsBy)}` : ''
  const retried = r.retries > 0 ? ` ${JSON.stringify(r.retriesBy)}` : ''
  return (
    `${r.concurrency} clients, ${r.ops} calls in ${(r.windowMs / 1_000).toFixed(1)} s: ` +
    `${r.opsPerS.toFixed(0)}/s, p50 ${r.p50Ms.toFixed(2)} ms, p90 ${r.p90Ms.toFixed(2)} ms, ` +
    `p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(1)} ms, ${r.retries} retried 503s${retried}, ` +
    `${r.errors} errors${errs}; node CPU ${r.nodeCpuMsPerCall.toFixed(2)} ms a call (3 nodes), ` +
    `client CPU ${(r.clientCpuUsPerCall / 1_000).toFixed(2)} ms a call (seed ${r.seed}, ${r.transport})`
  )
}

/**
 * One failover run on `ns`: load through the two nodes that do not lead it, kill -9 the leader,
 * time the first acknowledged call sent after the kill; then restart the node and wait until it
 * is back. Returns the milliseconds.
 */
async function failoverRun(
  cluster: ProcessCluster,
  ns: string,
  run: number,
  say: (line: string) => void,
): Promise<number> {
  for (let pick = 0; pick < FAILOVER_PICKS_MAX; pick++) {
    const lead = (await agreedLeaders(cluster.nodes, [ns]))[ns]!
    const victim = cluster.nodes.find((n) => n.peer === lead)
    if (!victim) throw new Error(`Namespace '${ns}' is led by '${lead}', which is none of the nodes`)
    const survivors = cluster.nodes.filter((n) => n !== victim)
    const client = new LoadProcess({
      targets: survivors.map((n) => ({ url: n.url, peer: n.peer })),
      namespaces: [ns],
      actors: ACTORS / NAMESPACES,
      concurrency: FAILOVER_CLIENTS,
      durationMs: 0,
      warmupMs: 0,
      readyAcks: 500,
      seed: SEED + 100 + run * FAILOVER_PICKS_MAX + pick,
    })
    try {
      await client.next('ready', 60_000)
      // Leader balancing may have moved the leadership since it was read: pick again then.
      const now = (await agreedLeaders(cluster.nodes, [ns]))[ns]!
      if (now !== lead) {
        say(`failover run ${run}: leadership of ${ns} moved before the kill; picking again`)
        continue
      }
      const killAtMs = performance.timeOrigin + performance.now()
      await cluster.kill(victim)
      client.send({ cmd: 'mark', atMs: killAtMs })
      const mark = await client.next('mark', FAILOVER_WAIT_MS)
      client.send({ cmd: 'stop' })
      const r = await client.result(60_000)
      say(
        `failover run ${run}: killed ${ns}'s leader ${lead.slice(-8)}; first call sent after the kill ` +
          `acknowledged ${mark.firstAckMs!.toFixed(0)} ms after it (load: ${r.retries} retried 503s ` +
          `${JSON.stringify(r.retriesBy)}, ${r.errors} errors, seed ${r.seed})`,
      )
      await cluster.startNode(
        victim.dataDir,
        survivors.map((n) => n.addr),
      )
      await allAlive(cluster)
      await agreedLeaders(cluster.nodes, [ns])
      return mark.firstAckMs!
    } finally {
      await client.kill()
    }
  }
  throw new Error(`Cannot measure failover of '${ns}': its leadership kept moving`)
}

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits

/** The write workload of the round-robin and one-client loads (etcd's comparison run sends the same). */
export function writeWorkload(quick: boolean): WriteWorkload {
  return {
    clients: quick ? 64 : 256,
    namespaces: Array.from({ length: NAMESPACES }, (_, i) => `bench-w${i}`),
    actors: ACTORS,
    warmupMs: 3_000,
    durationMs: quick ? 3_000 : 10_000,
    oneWarmupMs: 1_000,
    oneDurationMs: quick ? 2_000 : 5_000,
    seed: SEED,
  }
}

/** etcd's figures for the vs-etcd ratios: measured now when etcd is installed, else the constants. */
async function etcdBaseline(quick: boolean, say: (line: string) => void) {
  const m = await etcdThisRun(writeWorkload(quick), { load, describe }, say).catch((e: unknown) => {
    say(`etcd comparison failed, using the issue's figures: ${(e as Error).message}`)
    return undefined
  })
  if (!m) return { ...ETCD, measured: undefined, source: "the issue's figures" }
  const { writes, one } = m
  return {
    writesPerS: writes.opsPerS,
    p99Ms: writes.p99Ms,
    p50Ms1Client: one.p50Ms,
    measured: m,
    source: 'this run',
  }
}

const run: BenchGroup = async ({ quick, log: say }) => {
  const { clients, durationMs, oneDurationMs, namespaces: names } = writeWorkload(quick)
  const failoverRuns = quick ? 1 : 3
  const counter = await exampleModule('counter')
  const cluster = new ProcessCluster()
  try {
    await cluster.start(3)
    const nodes = cluster.nodes
    // Placement needs all three nodes in the _system group to give each namespace three replicas.
    await waitFor(
      async () => {
        const st = (await getJson(`${nodes[0]!.url}/v1/status`)) as { system: { voters: string[] } }
        return st.system.voters.length === 3
      },
      () => 'three _system voters',
      120_000,
    )
    for (const [i, name] of names.entries()) await createNamespace(nodes[i % nodes.length]!, name, 3)
    for (const [i, name] of names.entries()) await deploy(nodes[i % nodes.length]!, name, counter)
    const { leaders, balanced } = await balancedLeaders(nodes, names)
    const targets = nodes.map((n) => ({ url: n.url, peer: n.peer }))
    const spread = nodes.map((n) => Object.values(leaders).filter((l) => l === n.peer).length)
    say(
      `3 nodes, ${NAMESPACES} namespaces (rf 3, leaders per node ${spread.join('/')}` +
        `${balanced ? '' : ', still not balanced after 60 s'}), ${ACTORS} actors`,
    )
    say(`seed ${SEED}; load average ${loadavg()[0]!.toFixed(1)}`)

    const base = {
      targets,
      namespaces: names,
      actors: ACTORS,
      method: 'increment',
      transport: 'http' as const,
    }
    const pids = nodes.map((n) => n.proc.pid!)
    const many = await load({ ...base, concurrency: clients, warmupMs: 3_000, durationMs, seed: SEED }, pids)
    say(`round-robin: ${describe(many)}`)
    const direct = await load(
      {
        ...base,
        concurrency: clients,
        warmupMs: 1_000,
        durationMs,
        seed: SEED + 1,
        route: 'leader',
        leaders: await agreedLeaders(nodes, names),
      },
      pids,
    )
    say(`leader-direct: ${describe(direct)}`)
    const one = await load(
      { ...base, concurrency: 1, warmupMs: 1_000, durationMs: oneDurationMs, seed: SEED + 2 },
      pids,
    )
    say(`one client: ${describe(one)}`)

    const failovers: number[] = []
    for (let r = 0; r < failoverRuns; r++) failovers.push(await failoverRun(cluster, names[r]!, r, say))
    failovers.sort((a, b) => a - b)
    await cluster.stop()
    const baseline = await etcdBaseline(quick, say)
    const etcd = `etcd ${Math.round(baseline.writesPerS)} (${baseline.source})`

    const cores = availableParallelism()
    const note = `${clients} clients, ${ACTORS} actors in ${NAMESPACES} namespaces, round-robin over 3 gateways`
    const figures: BenchFigure[] = [
      {
        key: 'cluster.write_ops_per_s',
        value: Math.round(many.opsPerS),
        unit: 'calls/s',
        target: `>= ${Math.round(1.5 * baseline.writesPerS)}`,
        note: `${note}; ${etcd}`,
      },
      { key: 'cluster.write_p50_ms', value: round(many.p50Ms, 2), unit: 'ms', note },
      {
        key: 'cluster.write_p99_ms',
        value: round(many.p99Ms, 2),
        unit: 'ms',
        target: `<= ${round(0.6 * baseline.p99Ms, 1)}`,
        note: `etcd ${round(baseline.p99Ms, 2)} (${baseline.source})`,
      },
      {
        key: 'cluster.write_errors',
        value: many.errors + direct.errors + one.errors,
        unit: 'calls',
        target: '0',
        note: 'failed calls other than retried 503s, all three loads',
      },
      {
        key: 'cluster.write_vs_etcd',
        value: round(many.opsPerS / baseline.writesPerS, 2),
        unit: 'x',
        target: '>= 1.5',
        note: `ours / ${etcd} writes/s`,
      },
      {
        key: 'cluster.p99_vs_etcd',
        value: round(many.p99Ms / baseline.p99Ms, 2),
        unit: 'x',
        target: '<= 0.6',
        note: `ours / etcd's ${round(baseline.p99Ms, 2)} ms (${baseline.source})`,
      },
      {
        key: 'cluster.write_ops_per_s_leader_direct',
        value: Math.round(direct.opsPerS),
        unit: 'calls/s',
        note: `${clients} clients, each call sent to the namespace's leader`,
      },
      { key: 'cluster.write_p99_ms_leader_direct', value: round(direct.p99Ms, 2), unit: 'ms' },
      {
        key: 'cluster.node_cpu_ms_per_write',
        value: round(many.nodeCpuMsPerCall, 3),
        unit: 'ms',
        note: `CPU of the 3 nodes per call at ${clients} clients (${cores} cores: at most ~${Math.round((cores * 1_000) / many.nodeCpuMsPerCall)} calls/s while CPU-bound)`,
      },
      {
        key: 'cluster.write_p50_ms_1client',
        value: round(one.p50Ms, 3),
        unit: 'ms',
        target: '<= 1',
        note: `etcd ${round(baseline.p50Ms1Client, 3)} (${baseline.source})`,
      },
      { key: 'cluster.write_p99_ms_1client', value: round(one.p99Ms, 3), unit: 'ms' },
      {
        key: 'cluster.p50_1client_vs_etcd',
        value: round(one.p50Ms / baseline.p50Ms1Client, 2),
        unit: 'x',
        note: `ours / etcd's ${round(baseline.p50Ms1Client, 3)} ms (${baseline.source})`,
      },
      {
        key: 'cluster.failover_ms',
        value: Math.round(quantile(failovers, 0.5)),
        unit: 'ms',
        target: '<= 500',
        note: `p50 of ${failovers.length}: kill -9 of a namespace leader to the first acknowledged call sent after`,
      },
      { key: 'cluster.failover_max_ms', value: Math.round(failovers[failovers.length - 1]!), unit: 'ms' },
    ]
    if (baseline.measured) {
      figures.push(...etcdFigures(baseline.measured, { opsPerS: many.opsPerS, source: 'this run' }))
      markEtcdReported()
    }
    return figures
  } catch (e) {
    // The nodes log at warn level: what they said is the first thing to read when a run fails.
    for (const n of cluster.nodes) say(`node ${n.peer.slice(-8)} output (tail):\n${n.output().slice(-4_000)}`)
    throw e
  } finally {
    await cluster.stop()
  }
}

export default run
