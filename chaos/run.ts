/**
 * One chaos run: start the cluster, create and deploy the workload namespaces, run the clients
 * while the scenario's nemesis injects faults, heal everything, measure recovery, take final
 * reads, then check the history and the node status and write history.jsonl, report.json and
 * timeline.html into the run's directory.
 */
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exampleModule } from '../test/actors/examples.js'
import { formatEvent } from './check/index.js'
import { ChaosCluster } from './cluster.js'
import { getJson, sendJson } from './http.js'
import { StatusMonitor } from './monitor.js'
import { type FaultWindow, leaderOf, type NemesisContext, runNemesis, type Scenario } from './nemesis.js'
import { stream } from './random.js'
import { buildReport, type Check, type NodeEvent, type Report } from './report.js'
import { renderTimeline } from './timeline.js'
import {
  type ClientStats,
  type ClientTiming,
  counterWorkload,
  DEFAULT_TIMING,
  HistoryRecorder,
  listWorkload,
  perform,
  registerWorkload,
  runClient,
  type Workload,
} from './workload.js'
import { WsClients, type WsFinish, WsRecorder } from './ws-workload.js'

export interface RunOptions {
  scenario: Scenario
  nodes: number
  seconds: number
  seed: number
  /** The run's output directory (chaos/out/<run>). */
  outDir: string
  /** Clients per workload. */
  clients: number
  /** Keep the nodes' data directories (they are removed after a passing run otherwise). */
  keepData: boolean
  /** After the faults heal, every namespace must have a leader and take writes within this long. */
  recoveryBoundMs: number
  timing?: ClientTiming
  /** Register reads with `?consistency=stale`: not linearizable, so the run must fail (a self-check). */
  staleReads?: boolean
  /** The nodes' pino log level (default warn). */
  nodeLogLevel?: string
  /** WebSocket subscribers of the chat room (default 6). */
  subscribers?: number
  /** Progress lines. */
  log: (line: string) => void
}

export interface RunResult {
  scenario: string
  seed: number
  passed: boolean
  checks: Check[]
  outDir: string
}

/** Process numbers of the final readers (after every client's). */
const FINAL_READER = 10_000
/** How long a setup step (namespace, deploy, first write) may take, in milliseconds. */
const SETUP_TIMEOUT_MS = 90_000
/** How long final reads may keep retrying, in milliseconds. */
const FINAL_READ_TIMEOUT_MS = 60_000

export async function runScenario(opts: RunOptions): Promise<RunResult> {
  const timing = opts.timing ?? DEFAULT_TIMING
  await mkdir(opts.outDir, { recursive: true })
  const dataDir = await mkdtemp(join(tmpdir(), 'am-chaos-'))
  const historyFile = createWriteStream(join(opts.outDir, 'history.jsonl'))
  const history = new HistoryRecorder((e) => historyFile.write(formatEvent(e)))
  const nodeEvents: NodeEvent[] = []
  const cluster = newCluster(opts, dataDir, (e) => nodeEvents.push({ ...e, time: history.now() }))
  const workloads = [
    registerWorkload(4, { staleReads: opts.staleReads === true }),
    listWorkload(),
    counterWorkload(),
  ]
  const monitor = new StatusMonitor(cluster, () => history.now())
  const stats: ClientStats = { attempts: 0, retries: 0, errors: {} }
  const runTag = `s${opts.seed}-${Date.now().toString(36)}`
  const wsFile = createWriteStream(join(opts.outDir, 'ws.jsonl'))
  const wsRec = new WsRecorder(
    () => history.now(),
    (r) => wsFile.write(`${JSON.stringify(r)}\n`),
  )
  const ws = new WsClients(
    cluster,
    history,
    wsRec,
    stats,
    timing,
    (label) => stream(opts.seed, label),
    runTag,
    opts.subscribers,
  )
  // Every namespace the run creates: the HTTP workloads' and the chat room of the WebSocket one.
  const namespaces = [...workloads, ws.workload]
  let passed = false
  // Clients stop at the end of a run, or when the run fails midway (before the nodes are killed).
  let stop = false
  try {
    await cluster.start(opts.nodes)
    opts.log(`${opts.nodes} nodes up at ${Math.round(history.now())} ms`)
    await setup(cluster, namespaces, Math.min(3, opts.nodes), opts.seed)
    await ws.join(SETUP_TIMEOUT_MS)
    opts.log(`namespaces created, modules deployed at ${Math.round(history.now())} ms; clients start`)
    monitor.start()
    const clients = startClients(opts, cluster, workloads, history, timing, stats, () => stop, runTag)
    clients.push(...(await ws.start(() => stop)))
    const ctx: NemesisContext = {
      cluster,
      rnd: stream(opts.seed, 'nemesis'),
      namespaces: namespaces.map((w) => w.namespace),
      now: () => history.now(),
      nodesMax: opts.nodes + 1,
    }
    const windows: FaultWindow[] = await runNemesis(
      ctx,
      opts.scenario,
      history.now() + opts.seconds * 1000,
      (w) => opts.log(`fault ${w.fault}: ${w.detail} (${Math.round(w.end - w.start)} ms)`),
    )
    await healAll(cluster)
    // Recovery counts from the moment every node is back and every fault table is empty.
    const healedAt = history.now()
    nodeEvents.push({ kind: 'healed', node: -1, time: healedAt })
    const recovery = await measureRecovery(cluster, namespaces, healedAt, history, opts.recoveryBoundMs)
    opts.log(recovery.ok ? `recovered in ${recovery.ms} ms` : `no recovery within ${opts.recoveryBoundMs} ms`)
    stop = true
    await Promise.all(clients)
    const wsFinish: WsFinish = await ws.finish()
    opts.log(
      `WebSocket subscribers: ${wsFinish.caughtUp.length} of ${wsFinish.caughtUp.length + wsFinish.behind.length} received the closing post`,
    )
    const finals = await finalReads(cluster, workloads, history, timing)
    const convergence = await measureConvergence(cluster, history, opts.recoveryBoundMs)
    opts.log(
      convergence.ok
        ? `replicas converged ${convergence.ms} ms after the final reads`
        : `replicas of ${convergence.behind.join(', ')} still disagree after ${convergence.ms} ms`,
    )
    monitor.stop()
    await monitor.poll()
    await new Promise<void>((r) => historyFile.end(r))
    await new Promise<void>((r) => wsFile.end(r))
    const report: Report = buildReport({
      scenario: opts.scenario,
      seed: opts.seed,
      nodes: opts.nodes,
      seconds: opts.seconds,
      events: history.events,
      windows,
      nodeEvents,
      monitor,
      recovery,
      finals,
      convergence,
      stats,
      cluster,
      ws: { records: wsRec.records, finish: wsFinish },
    })
    passed = report.passed
    await writeOutputs(opts.outDir, report, history, monitor)
    return {
      scenario: opts.scenario.name,
      seed: opts.seed,
      passed,
      checks: report.checks,
      outDir: opts.outDir,
    }
  } finally {
    stop = true
    monitor.stop()
    await ws.stop()
    historyFile.end()
    wsFile.end()
    await cluster.stop()
    if (passed && !opts.keepData) await rm(dataDir, { recursive: true, force: true })
    else opts.log(`node data kept in ${dataDir}`)
  }
}

function newCluster(
  opts: RunOptions,
  dataDir: string,
  onEvent: (e: { kind: string; node: number; detail?: string }) => void,
): ChaosCluster {
  return new ChaosCluster({
    dir: dataDir,
    logDir: opts.outDir,
    // Churn replaces the replicas of a removed node sooner than the 10 s default.
    args:
      opts.scenario.name === 'churn' || opts.scenario.name === 'mix'
        ? ['--replica-dead-timeout-ms', '4000']
        : [],
    ...(opts.nodeLogLevel ? { logLevel: opts.nodeLogLevel } : {}),
    onEvent,
  })
}

/** Starts `opts.clients` clients per workload; each stops when `stopped()` says so. */
function startClients(
  opts: RunOptions,
  cluster: ChaosCluster,
  workloads: Workload[],
  history: HistoryRecorder,
  timing: ClientTiming,
  stats: ClientStats,
  stopped: () => boolean,
  runTag: string,
): Promise<void>[] {
  return workloads.flatMap((w, wi) =>
    Array.from({ length: opts.clients }, (_, c) => {
      const id = wi * 100 + c
      const rnd = stream(opts.seed, `client-${id}`)
      return runClient(id, cluster, w, rnd, history, timing, stats, stopped, runTag)
    }),
  )
}

/** report.json, timeline.html and status.jsonl (history.jsonl is written as the run goes). */
async function writeOutputs(
  outDir: string,
  report: Report,
  history: HistoryRecorder,
  monitor: StatusMonitor,
): Promise<void> {
  await writeFile(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(
    join(outDir, 'timeline.html'),
    renderTimeline(report, history.events, monitor.leaderSpans()),
  )
  await writeFile(join(outDir, 'status.jsonl'), monitor.samples.map((x) => `${JSON.stringify(x)}\n`).join(''))
}

/** Retries `probe` every 200 ms until it returns a value or `timeoutMs` passes (then throws `what`). */
async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Creates each workload's namespace, deploys its module, and waits for a first write to succeed. */
async function setup(cluster: ChaosCluster, workloads: Workload[], rf: number, seed: number): Promise<void> {
  const first = cluster.nodes[0]!
  const rnd = stream(seed, 'setup')
  const stats: ClientStats = { attempts: 0, retries: 0, errors: {} }
  // Every node must be in _system first: a namespace created earlier is placed on fewer nodes.
  const peers = cluster.nodes.map((n) => n.peer)
  await until(
    async () => {
      const st = (await getJson(`${first.url}/v1/status`)) as {
        system: { voters: string[]; learners: string[] }
      }
      const members = new Set([...st.system.voters, ...st.system.learners])
      return peers.every((p) => members.has(p)) ? true : undefined
    },
    'every node to join _system',
    SETUP_TIMEOUT_MS,
  )
  await Promise.all(
    workloads.map(async (w) => {
      await until(
        async () => {
          const res = await sendJson(`${first.url}/v1/namespaces`, 'POST', {
            name: w.namespace,
            replicationFactor: rf,
          })
          return res.status === 201 || res.status === 409 ? true : undefined
        },
        `namespace ${w.namespace} to be created`,
        SETUP_TIMEOUT_MS,
      )
      await until(
        async () => {
          const list = (await getJson(`${first.url}/v1/namespaces`)) as {
            namespaces: Array<{ name: string; voters: string[] }>
          }
          return list.namespaces.find((n) => n.name === w.namespace)?.voters.length === rf ? true : undefined
        },
        `namespace ${w.namespace} to have ${rf} voters`,
        SETUP_TIMEOUT_MS,
      )
      const bytes = await exampleModule(w.module)
      await until(
        async () => {
          const res = await sendJson(`${first.url}/v1/namespaces/${w.namespace}/module`, 'PUT', bytes, 30_000)
          if (res.status !== 200 && res.status !== 503)
            throw new Error(`Deploy to ${w.namespace} failed: ${res.status} ${JSON.stringify(res.body)}`)
          return res.status === 200 ? true : undefined
        },
        `module deploy to ${w.namespace}`,
        SETUP_TIMEOUT_MS,
      )
      await until(
        async () => {
          const done = await perform(cluster, w, w.probe(0), rnd, undefined, DEFAULT_TIMING, stats)
          return done.type === 'ok' ? true : undefined
        },
        `a first write to ${w.namespace}`,
        SETUP_TIMEOUT_MS,
      )
    }),
  )
  await until(
    async () => ((await converged(cluster)).length === 0 ? true : undefined),
    'every replica to catch up before the run',
    SETUP_TIMEOUT_MS,
  )
}

/**
 * The groups whose replicas disagree right now: no leader, a node that is up not hosting it while
 * the catalog places it there, or a replica whose applied index differs from the leader's commit.
 * Empty when every group is led and every replica has applied everything committed.
 */
export async function converged(cluster: ChaosCluster): Promise<string[]> {
  const views = await Promise.all(
    cluster.up().map(async (n) => ({
      node: n,
      groups: (
        (await getJson(`${n.url}/v1/chaos/groups`, 2_000)) as {
          groups: Array<{ group: string; role: string; commit: number; applied: number }>
        }
      ).groups,
    })),
  )
  const catalog = (await getJson(`${cluster.up()[0]!.url}/v1/namespaces`)) as {
    namespaces: Array<{ name: string; voters: string[]; learners: string[] }>
  }
  const behind: string[] = []
  for (const ns of [{ name: '_system', voters: [], learners: [] }, ...catalog.namespaces]) {
    const hosts = views.flatMap((v) =>
      v.groups.filter((g) => g.group === ns.name).map((g) => ({ node: v.node, g })),
    )
    const leader = hosts.find((h) => h.g.role === 'leader')
    const placed = [...ns.voters, ...ns.learners].filter((p) => cluster.up().some((n) => n.peer === p))
    const missing = placed.filter((p) => !hosts.some((h) => h.node.peer === p))
    if (!leader || missing.length > 0 || hosts.some((h) => h.g.applied !== leader.g.commit))
      behind.push(ns.name)
  }
  return behind
}

/** Ends every fault: network tables cleared, paused nodes resumed, killed (not removed) nodes restarted. */
async function healAll(cluster: ChaosCluster): Promise<void> {
  for (const n of cluster.nodes) if (n.state === 'paused') cluster.resume(n)
  await Promise.all(cluster.nodes.filter((n) => n.state === 'killed').map((n) => cluster.restart(n)))
  await cluster.healNetwork()
}

/** How long after the heal `_system` and every namespace had a leader and each namespace took a write. */
export interface Recovery {
  ok: boolean
  ms: number
  boundMs: number
  /** Per group: milliseconds after the heal until it had a leader (`_system`) or took a write. */
  groups: Record<string, number | null>
}

async function measureRecovery(
  cluster: ChaosCluster,
  workloads: Workload[],
  healedAt: number,
  history: HistoryRecorder,
  boundMs: number,
): Promise<Recovery> {
  const rnd = stream(healedAt | 0, 'probe')
  const stats: ClientStats = { attempts: 0, retries: 0, errors: {} }
  const groups: Record<string, number | null> = { _system: null }
  for (const w of workloads) groups[w.namespace] = null
  const since = () => Math.round(history.now() - healedAt)
  let n = 1
  // Each group on its own, at once: one slow namespace does not delay the others' figures.
  const system = async () => {
    while (groups._system === null && since() < boundMs) {
      if (await leaderOf(cluster, '_system')) groups._system = since()
      else await new Promise((r) => setTimeout(r, 100))
    }
  }
  const namespace = async (w: Workload) => {
    while (groups[w.namespace] === null && since() < boundMs) {
      const led = (await leaderOf(cluster, w.namespace)) !== undefined
      const done =
        led && (await perform(cluster, w, w.probe(n++), rnd, `probe-${healedAt}-${n}`, DEFAULT_TIMING, stats))
      if (done && done.type === 'ok') groups[w.namespace] = since()
      else await new Promise((r) => setTimeout(r, 100))
    }
  }
  await Promise.all([system(), ...workloads.map(namespace)])
  const times = Object.values(groups)
  const all = times.every((t) => t !== null)
  const ms = all ? Math.max(...(times as number[])) : since()
  // A probe that began inside the bound may end after it: that is still too slow.
  return { ok: all && ms <= boundMs, ms, boundMs, groups }
}

/** Whether every group's replicas caught up with its leader after the run, and how long it took. */
export interface Convergence {
  ok: boolean
  ms: number
  /** Groups still not led or not caught up when the bound passed. */
  behind: string[]
}

async function measureConvergence(
  cluster: ChaosCluster,
  history: HistoryRecorder,
  boundMs: number,
): Promise<Convergence> {
  const from = history.now()
  let behind: string[] = ['(not asked)']
  while (history.now() - from < boundMs) {
    behind = await converged(cluster).catch(() => ['(a node did not answer)'])
    if (behind.length === 0) return { ok: true, ms: Math.round(history.now() - from), behind }
    await new Promise((r) => setTimeout(r, 200))
  }
  return { ok: false, ms: Math.round(history.now() - from), behind }
}

/** Final reads of every actor, retried until they succeed; recorded in the history. */
async function finalReads(
  cluster: ChaosCluster,
  workloads: Workload[],
  history: HistoryRecorder,
  timing: ClientTiming,
): Promise<{ ok: number; missing: string[] }> {
  const rnd = stream(0, 'final')
  const stats: ClientStats = { attempts: 0, retries: 0, errors: {} }
  const missing: string[] = []
  let ok = 0
  const deadline = Date.now() + FINAL_READ_TIMEOUT_MS
  await Promise.all(
    workloads.map(async (w, wi) => {
      const process = FINAL_READER + wi
      for (const actor of w.actors) {
        const op = w.finalRead(actor)
        for (;;) {
          history.record({ process, type: 'invoke', f: op.f, key: op.key, value: op.input })
          const done = await perform(cluster, w, op, rnd, undefined, timing, stats)
          history.record({
            process,
            type: done.type,
            f: op.f,
            key: op.key,
            value: done.value,
            ...(done.error ? { error: done.error } : {}),
          })
          if (done.type === 'ok') {
            ok++
            break
          }
          if (Date.now() > deadline) {
            missing.push(op.key)
            break
          }
        }
      }
    }),
  )
  return { ok, missing }
}
