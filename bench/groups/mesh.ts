/**
 * Mesh benchmark: three real `actormesh start` processes on loopback. 1,000 namespaces (100 with
 * --quick, replication factor 3) are created through `POST /v1/namespaces`; once every node hosts
 * all of them with a known leader and the groups have had time to quiesce, each process's CPU is
 * read from /proc/<pid>/stat over an idle window. `cluster.idle_cpu_pct` is the busiest of the
 * three, in percent of one core, measured once the leaders are balanced. Linux only (/proc).
 */
import { execFileSync } from 'node:child_process'
import { readFile, readlink } from 'node:fs/promises'
import {
  type ClusterNode,
  getJson,
  type NamespaceView,
  ProcessCluster,
  waitFor,
} from '../../test/integration/cluster.js'
import type { BenchFigure, BenchGroup } from '../types.js'

/** Create requests in flight at once. */
const createsInFlightMax = 16
/** Time given to the groups to quiesce (about 1 s of idle ticks) before measuring. */
const settleMs = 5_000
/** Longest wait, after that, for every node to report at most `_system` as an active group. */
const quiesceWaitMs = 60_000
/** Longest wait for every node to host every namespace. */
const hostedWaitMs = 600_000
/** Longest wait for leader balancing; the CPU is measured anyway after it (and said so). */
const balanceWaitMs = 900_000

interface CpuSample {
  ticks: number
  atMs: number
}

/** User + system CPU of every thread of `pid`, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]
  if (kb === undefined) throw new Error(`Cannot read the RSS of process ${pid}`)
  return Number(kb) / 1024
}

function clockTicksPerS(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isInteger(n) && n > 0 ? n : 100
  } catch {
    return 100
  }
}

async function sample(pid: number): Promise<CpuSample> {
  return { ticks: await cpuTicks(pid), atMs: performance.now() }
}

async function post(url: string, body: unknown): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  })
  await res.arrayBuffer()
  return res.status
}

/**
 * Creates every name, at most `createsInFlightMax` at once, round-robin over the nodes (a
 * follower forwards to the `_system` leader). 503 (no leader yet, RPC timeout) and 500 (e.g. an
 * outcome-unknown proposal) are retried; 409 on a retry means an earlier attempt committed.
 */
async function createAll(urls: string[], names: string[]): Promise<{ retries: number }> {
  let next = 0
  let retries = 0
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const i = next++
      const name = names[i]!
      for (let attempt = 0; ; attempt++) {
        const status = await post(`${urls[(i + attempt) % urls.length]}/v1/namespaces`, { name }).catch(
          () => 0,
        )
        if (status === 201 || (status === 409 && attempt > 0)) break
        if (attempt >= 50 || (status !== 503 && status !== 500 && status !== 0))
          throw new Error(`Cannot create namespace '${name}': status ${status} after ${attempt + 1} attempts`)
        retries++
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  }
  await Promise.all(Array.from({ length: createsInFlightMax }, worker))
  return { retries }
}

/**
 * Namespaces of `names` that `node` hosts with a known leader and whose replica set is complete
 * (three voters, no learner: a set placed while a node looked down is repaired one step at a
 * time, which is work, not idleness), and how many of all it leads.
 */
async function hostedBy(node: ClusterNode, names: Set<string>): Promise<{ hosted: number; led: number }> {
  const views = ((await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }).namespaces
  let hosted = 0
  for (const v of views) {
    if (names.has(v.name) && v.leader !== '' && v.voters.length === 3 && v.learners.length === 0) hosted++
  }
  return { hosted, led: views.filter((v) => v.leader === node.peer).length }
}

/** Waits until every node hosts every name, fully replicated, with a known leader; says the counts every 10 s. */
async function waitHosted(
  nodes: ClusterNode[],
  names: Set<string>,
  say: (line: string) => void,
): Promise<void> {
  let last = ''
  let saidAtMs = performance.now()
  await waitFor(
    async () => {
      const seen = await Promise.all(nodes.map((n) => hostedBy(n, names)))
      last = seen.map((s) => s.hosted).join('/')
      if (performance.now() - saidAtMs > 10_000) {
        saidAtMs = performance.now()
        say(`hosted, fully replicated, with a known leader: ${last}`)
      }
      return seen.every((s) => s.hosted === names.size)
    },
    () => `every node to host all ${names.size} namespaces, fully replicated, with a known leader (${last})`,
    hostedWaitMs,
  )
}

/**
 * Waits until no node leads more than its fair share (the `_system` leader's balancing moves three
 * leaders per 2 s round, so 1,000 namespaces take minutes): a cluster still moving leaders is not
 * idle. Returns the leader counts, and whether the balance was reached within `balanceWaitMs`.
 */
async function waitBalanced(
  nodes: ClusterNode[],
  names: Set<string>,
): Promise<{ led: number[]; ok: boolean }> {
  const fair = Math.ceil(names.size / nodes.length)
  let led: number[] = []
  const ok = await waitFor(
    async () => {
      led = (await Promise.all(nodes.map((n) => hostedBy(n, names)))).map((s) => s.led)
      return led.every((l) => l <= fair)
    },
    () => `leaders balanced (${led.join('/')})`,
    balanceWaitMs,
  ).then(
    () => true,
    () => false,
  )
  return { led, ok }
}

/**
 * Waits until no node has more than one active (unquiesced) Raft group — `_system`, whose leader
 * keeps it awake — or `quiesceWaitMs` passes; returns each node's count at the end. Groups that
 * just changed leader are awake until their first idle second passes: that is settling, not idle.
 */
async function waitQuiesced(nodes: ClusterNode[]): Promise<number[]> {
  const deadline = performance.now() + quiesceWaitMs
  for (;;) {
    const active = await Promise.all(
      nodes.map(
        async (n) =>
          ((await getJson(`${n.url}/v1/status`)) as { raft: { activeGroups: number } }).raft.activeGroups,
      ),
    )
    if (active.every((a) => a <= 1) || performance.now() > deadline) return active
    await new Promise((r) => setTimeout(r, 1_000))
  }
}

/** CPU of each process over `windowMs`, in percent of one core, and the Raft step-downs logged meanwhile. */
async function idleCpu(
  nodes: ClusterNode[],
  windowMs: number,
): Promise<{ pct: number[]; stepDowns: number }> {
  const ticksPerS = clockTicksPerS()
  const pids = nodes.map((n) => n.proc.pid!)
  const stepDowns = () => nodes.reduce((sum, n) => sum + n.output().split('stepping down').length - 1, 0)
  const stepDownsBefore = stepDowns()
  const before = await Promise.all(pids.map(sample))
  await new Promise((r) => setTimeout(r, windowMs))
  const after = await Promise.all(pids.map(sample))
  const pct = pids.map((_, i) => {
    const cpuS = (after[i]!.ticks - before[i]!.ticks) / ticksPerS
    return (100 * cpuS) / ((after[i]!.atMs - before[i]!.atMs) / 1_000)
  })
  return { pct, stepDowns: stepDowns() - stepDownsBefore }
}

async function startCluster(cluster: ProcessCluster): Promise<ClusterNode[]> {
  await cluster.start(3)
  const nodes = cluster.nodes
  for (const n of nodes) {
    const exe = await readlink(`/proc/${n.proc.pid}/exe`)
    if (!exe.endsWith('/node')) throw new Error(`Process ${n.proc.pid} is '${exe}', not the node itself`)
  }
  await waitFor(
    async () => {
      const st = (await getJson(`${nodes[0]!.url}/v1/status`)) as { system: { voters: string[] } }
      return st.system.voters.length === 3
    },
    () => 'three _system voters',
    120_000,
  )
  return nodes
}

const run: BenchGroup = async ({ quick, log: say }) => {
  if (process.platform !== 'linux') {
    say('skipped: CPU is read from /proc, which only Linux has')
    return []
  }
  const count = quick ? 100 : 1_000
  const windowMs = quick ? 3_000 : 10_000
  const names = Array.from({ length: count }, (_, i) => `bench-${String(i).padStart(4, '0')}`)
  const cluster = new ProcessCluster()
  try {
    const nodes = await startCluster(cluster)
    const createStart = performance.now()
    const { retries } = await createAll(
      nodes.map((n) => n.url),
      names,
    )
    const createS = (performance.now() - createStart) / 1_000
    say(`created ${count} namespaces in ${createS.toFixed(1)} s (${retries} retries)`)
    const wanted = new Set(names)
    await waitHosted(nodes, wanted, say)
    const hostedS = (performance.now() - createStart) / 1_000
    say(
      `every node hosts all ${count}, fully replicated, with a leader ${hostedS.toFixed(1)} s after the first create`,
    )
    const balanceStart = performance.now()
    const balance = await waitBalanced(nodes, wanted)
    const balanceS = (performance.now() - balanceStart) / 1_000
    say(
      `leaders ${balance.led.join('/')} ${balance.ok ? 'balanced' : 'NOT balanced'} after ${balanceS.toFixed(0)} s`,
    )

    await new Promise((r) => setTimeout(r, settleMs))
    const quiesceStart = performance.now()
    const active = await waitQuiesced(nodes)
    say(
      `active Raft groups per node ${active.join('/')} after ${((performance.now() - quiesceStart) / 1_000).toFixed(0)} s more`,
    )
    const { pct, stepDowns } = await idleCpu(nodes, windowMs)
    const rss = await Promise.all(nodes.map((n) => rssMb(n.proc.pid!)))
    const load = (await readFile('/proc/loadavg', 'utf8')).split(' ')[0]
    for (let i = 0; i < nodes.length; i++)
      say(
        `node ${i} (pid ${nodes[i]!.proc.pid}): ${pct[i]!.toFixed(2)}% of a core idle, RSS ${rss[i]!.toFixed(0)} MB`,
      )
    say(`during the window: ${stepDowns} Raft step-downs logged; load average ${load}`)
    return figures({
      count,
      windowMs,
      pct,
      rss,
      createS,
      hostedS,
      balanceS: balance.ok ? balanceS : undefined,
    })
  } finally {
    await cluster.stop()
  }
}

function figures(m: {
  count: number
  windowMs: number
  pct: number[]
  rss: number[]
  createS: number
  hostedS: number
  balanceS: number | undefined
}): BenchFigure[] {
  const nsNote = `3 nodes, ${m.count} namespaces x 3 replicas`
  const round2 = (v: number) => Math.round(v * 100) / 100
  const out: BenchFigure[] = [
    {
      key: 'cluster.idle_cpu_pct',
      value: round2(Math.max(...m.pct)),
      unit: '% core',
      target: '<= 5',
      note: `busiest node; ${nsNote}; ${m.windowMs / 1_000} s window after leaders balanced`,
    },
    {
      key: 'cluster.idle_cpu_pct_mean',
      value: round2(m.pct.reduce((a, b) => a + b, 0) / m.pct.length),
      unit: '% core',
      note: 'mean of the three nodes',
    },
    { key: 'cluster.idle_rss_mb_max', value: Math.round(Math.max(...m.rss)), unit: 'MB', note: nsNote },
    {
      key: 'cluster.ns_create_per_s',
      value: Math.round((m.count / m.createS) * 10) / 10,
      unit: 'ns/s',
      note: `${createsInFlightMax} creates in flight, via all nodes`,
    },
    {
      key: 'cluster.ns_hosted_s',
      value: Math.round(m.hostedS * 10) / 10,
      unit: 's',
      note: 'first create until every node hosts all (3 voters) with a leader',
    },
  ]
  if (m.balanceS !== undefined) {
    out.push({
      key: 'cluster.leader_balance_s',
      value: Math.round(m.balanceS),
      unit: 's',
      note: 'all hosted until no node leads more than its fair share',
    })
  }
  return out
}

export default run
