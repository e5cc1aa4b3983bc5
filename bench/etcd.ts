/**
 * The etcd comparison: the cluster benchmark's write workload against a 3-member etcd on loopback,
 * started from Debian's `etcd-server` package when `etcd` is on PATH. The cluster group calls
 * `etcdThisRun` at its end (after its own nodes stopped, so both runs have the machine to
 * themselves) and reports the figures; the `etcd` group calls the same function, which measures
 * once per `npm run bench` process, so `npm run bench` measures etcd once and `npm run bench --
 * etcd` runs only the comparison.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from '../test/integration/cluster.js'
import type { LoadConfig, LoadResult } from './load-client.js'
import type { BenchFigure } from './types.js'

/** Printed instead of the etcd figures when the package is missing. */
export const ETCD_MISSING = 'etcd not installed (apt-get install etcd-server): comparison skipped'
/** A member that has not answered `GET /health` healthy after this long fails the start. */
const ETCD_HEALTHY_WAIT_MS = 60_000
/** A member still running this long after SIGTERM gets SIGKILL. */
const ETCD_STOP_WAIT_MS = 10_000
/** Output kept per member for the error of a failed start. */
const ETCD_OUTPUT_CHARS_MAX = 8_192
/**
 * The put's value: 8 bytes, the size of the counter actor's state (one 64-bit count), so that
 * etcd writes about what our nodes write per call.
 */
const ETCD_VALUE = '00000001'

/** A load run with the CPU the server processes spent per call after the warm-up (NaN if unknown). */
export type MeasuredLoad = LoadResult & { nodeCpuMsPerCall: number }
/**
 * The cluster group's load runner and result line, passed in so that etcd is measured and described
 * exactly as our nodes are: `load` runs bench/load-client.ts to its end and times the servers' CPU.
 */
export interface LoadRunner {
  load: (config: Partial<LoadConfig>, pids: number[]) => Promise<MeasuredLoad>
  describe: (r: MeasuredLoad) => string
}

/** One member process. */
interface EtcdMember {
  name: string
  clientUrl: string
  proc: ChildProcess
  exited: Promise<void>
  output: () => string
}

/** True when an `etcd` binary is on PATH (`command -v etcd`). */
export function etcdInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v etcd'], { stdio: 'ignore' }).status === 0
}

/** The installed etcd's version as `etcd 3.4.23`, from the first line of `etcd --version`. */
export function etcdVersion(): string {
  const out = spawnSync('etcd', ['--version'], { encoding: 'utf8' }).stdout ?? ''
  const version = /Version:\s*(\S+)/.exec(out)?.[1]
  return version ? `etcd ${version}` : 'etcd (version unknown)'
}

/** `count` free TCP ports on 127.0.0.1 (all held open at once, so they differ, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer()
          s.once('error', reject)
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

/** An etcd cluster of `count` members on loopback with data in a temp dir. */
export class EtcdCluster {
  readonly members: EtcdMember[] = []
  private root = ''

  /** Starts the members and waits until each says it is healthy; stops what it started on failure. */
  async start(count: number): Promise<void> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`Bad etcd member count '${count}'`)
    try {
      this.root = await mkdtemp(join(tmpdir(), 'am-etcd-'))
      const ports = await freePorts(2 * count)
      const peerUrl = (i: number) => `http://127.0.0.1:${ports[count + i]}`
      const initial = Array.from({ length: count }, (_, i) => `m${i}=${peerUrl(i)}`).join(',')
      for (let i = 0; i < count; i++) {
        this.members.push(this.spawnMember(`m${i}`, `http://127.0.0.1:${ports[i]}`, peerUrl(i), initial))
      }
      for (const m of this.members) await this.healthy(m)
    } catch (e) {
      await this.stop()
      throw e
    }
  }

  private spawnMember(name: string, clientUrl: string, peerUrl: string, initial: string): EtcdMember {
    const args = [
      ...['--name', name, '--data-dir', join(this.root, name)],
      ...['--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl],
      ...['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl],
      ...['--initial-cluster', initial, '--initial-cluster-state', 'new'],
      ...['--initial-cluster-token', `am-bench-${process.pid}`, '--logger', 'zap', '--log-level', 'error'],
    ]
    const proc = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-ETCD_OUTPUT_CHARS_MAX)
    }
    proc.stdout!.on('data', keep)
    proc.stderr!.on('data', keep)
    const exited = new Promise<void>((r) => {
      proc.once('exit', () => r())
      proc.once('error', (e) => {
        out += String(e)
        r()
      })
    })
    return { name, clientUrl, proc, exited, output: () => out }
  }

  private async healthy(m: EtcdMember): Promise<void> {
    await waitFor(
      async () => {
        const res = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(5_000) })
        return ((await res.json()) as { health?: string }).health === 'true'
      },
      () => `etcd member ${m.name} at ${m.clientUrl} to be healthy; output:\n${m.output()}`,
      ETCD_HEALTHY_WAIT_MS,
      () => m.proc.exitCode !== null || m.proc.signalCode !== null,
    )
  }

  /** SIGTERM to every member, SIGKILL to those still running after a while; removes the data. */
  async stop(): Promise<void> {
    const members = this.members.splice(0)
    await Promise.all(
      members.map(async (m) => {
        if (m.proc.exitCode !== null || m.proc.signalCode !== null) return
        m.proc.kill('SIGTERM')
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<'late'>((r) => {
          timer = setTimeout(() => r('late'), ETCD_STOP_WAIT_MS)
        })
        if ((await Promise.race([m.exited, late])) === 'late') m.proc.kill('SIGKILL')
        clearTimeout(timer)
        await m.exited
      }),
    )
    if (this.root) await rm(this.root, { recursive: true, force: true })
    this.root = ''
  }
}

/** What one comparison run measured. */
export interface EtcdMeasurement {
  version: string
  /**
   * The cluster group's round-robin load over etcd's native gRPC API (what its clients use): the
   * same clients, keys, warm-up and window.
   */
  writes: MeasuredLoad
  /** One client over gRPC, as for the cluster group's one-client p50. */
  one: MeasuredLoad
  /** The round-robin load again through etcd's HTTP/JSON gateway (a proxy inside etcd to its gRPC). */
  gateway: MeasuredLoad
  /** The 1-minute load average when the run started and when it ended. */
  loadAvg: [number, number]
}

/** The workload of bench/groups/cluster.ts, shared so that both runs send the same thing. */
export interface WriteWorkload {
  clients: number
  namespaces: string[]
  actors: number
  warmupMs: number
  durationMs: number
  oneWarmupMs: number
  oneDurationMs: number
  seed: number
}

let measured: Promise<EtcdMeasurement | undefined> | undefined
let reported = false

/**
 * Measures etcd with `workload` once per process (a second call returns the first one's answer);
 * undefined when etcd is not installed. `say` logs progress lines.
 */
export function etcdThisRun(
  workload: WriteWorkload,
  runner: LoadRunner,
  say: (line: string) => void,
): Promise<EtcdMeasurement | undefined> {
  measured ??= etcdInstalled() ? measureEtcd(workload, runner, say) : Promise.resolve(undefined)
  return measured
}

/** Marks the etcd figures as reported (by the cluster group), so the etcd group does not repeat them. */
export function markEtcdReported(): void {
  reported = true
}

/** Whether a group of this process reported the etcd figures already. */
export function etcdReported(): boolean {
  return reported
}

async function measureEtcd(
  w: WriteWorkload,
  runner: LoadRunner,
  say: (line: string) => void,
): Promise<EtcdMeasurement> {
  const before = loadavg()[0]!
  const version = etcdVersion()
  const cluster = new EtcdCluster()
  try {
    await cluster.start(3)
    say(`${version}: 3 members on loopback (${cluster.members.map((m) => m.clientUrl).join(', ')})`)
    const base = {
      targets: cluster.members.map((m) => ({ url: m.clientUrl, peer: m.name })),
      namespaces: w.namespaces,
      actors: w.actors,
      transport: 'etcd-grpc' as const,
      payload: ETCD_VALUE,
    }
    const pids = cluster.members.map((m) => m.proc.pid!)
    const many = { concurrency: w.clients, warmupMs: w.warmupMs, durationMs: w.durationMs, seed: w.seed }
    const writes = await runner.load({ ...base, ...many }, pids)
    say(`etcd round-robin, gRPC: ${runner.describe(writes)}`)
    const one = await runner.load(
      { ...base, concurrency: 1, warmupMs: w.oneWarmupMs, durationMs: w.oneDurationMs, seed: w.seed + 2 },
      pids,
    )
    say(`etcd one client, gRPC: ${runner.describe(one)}`)
    const gateway = await runner.load({ ...base, ...many, transport: 'etcd' }, pids)
    say(`etcd round-robin, HTTP gateway: ${runner.describe(gateway)}`)
    return { version, writes, one, gateway, loadAvg: [before, loadavg()[0]!] }
  } finally {
    await cluster.stop()
  }
}

const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits

/**
 * The etcd figures and `cluster.write_ratio_vs_etcd`: our writes/s (`ours.opsPerS`, from where
 * `ours.source` says) over etcd's.
 */
export function etcdFigures(m: EtcdMeasurement, ours: { opsPerS: number; source: string }): BenchFigure[] {
  const load = `load average ${m.loadAvg[0].toFixed(1)} -> ${m.loadAvg[1].toFixed(1)}`
  const note = `${m.version}, 3 members, ${m.writes.concurrency} clients, round-robin, gRPC; ${load}`
  return [
    { key: 'etcd.write_ops_per_s', value: Math.round(m.writes.opsPerS), unit: 'puts/s', note },
    {
      key: 'etcd.write_p99_ms',
      value: round(m.writes.p99Ms, 2),
      unit: 'ms',
      note: `p50 ${round(m.writes.p50Ms, 2)}`,
    },
    {
      key: 'etcd.write_p50_ms_1client',
      value: round(m.one.p50Ms, 3),
      unit: 'ms',
      note: `p99 ${round(m.one.p99Ms, 3)}`,
    },
    {
      key: 'etcd.gateway_write_ops_per_s',
      value: Math.round(m.gateway.opsPerS),
      unit: 'puts/s',
      note: `the same load through etcd's HTTP/JSON gateway; p50 ${round(m.gateway.p50Ms, 2)}`,
    },
    {
      key: 'etcd.gateway_write_p99_ms',
      value: round(m.gateway.p99Ms, 2),
      unit: 'ms',
      note: "through etcd's HTTP/JSON gateway",
    },
    {
      key: 'cluster.write_ratio_vs_etcd',
      value: round(ours.opsPerS / m.writes.opsPerS, 3),
      unit: 'x',
      target: '>= 1.5',
      note: `ours ${Math.round(ours.opsPerS)} calls/s (${ours.source}) / etcd's ${Math.round(m.writes.opsPerS)} puts/s`,
    },
  ]
}
