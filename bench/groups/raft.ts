/**
 * Benchmarks of the multi-Raft driver over the Raft core: three drivers in one process on the
 * in-memory hub and an in-memory log store. Figures are printed, never asserted.
 */
import {
  createMultiRaft,
  type Entry,
  MemoryHub,
  MemoryLogStore,
  type MultiRaft,
  type MultiRaftConfig,
  type StateMachine,
} from '../../consensus/index.js'
import { TestCluster } from '../../test/consensus/driver-harness.js'
import { seededRandom } from '../../test/consensus/harness.js'
import type { BenchFigure, BenchGroup } from '../types.js'

const SEED = 7
const IDS = ['a', 'b', 'c']

/** Counts what it applies; keeps no state (the benchmark measures Raft and the driver). */
class CountingStateMachine implements StateMachine {
  applied = 0
  apply(entries: Entry[]): void {
    this.applied += entries.length
  }
  applySnapshot(): void {}
  snapshot(): Uint8Array {
    return new Uint8Array(8)
  }
}

async function settle(hub: MemoryHub, drivers: MultiRaft[]): Promise<void> {
  for (let i = 0; i < 1_000_000; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    if (hub.inFlight === 0 && drivers.every((d) => !d.stats().busy)) return
  }
  throw new Error('cluster did not settle')
}

/** Closed loop: `inflight` proposals per group, each replaced as soon as it resolves. */
async function throughput(groups: number, inflight: number, durationMs: number, log: (l: string) => void) {
  const hub = new MemoryHub()
  const random = seededRandom(SEED)
  const config: MultiRaftConfig = { pendingProposalsMax: inflight * 2 }
  const drivers = IDS.map((id) =>
    createMultiRaft({ id, transport: hub.endpoint(id), logStore: new MemoryLogStore(), random, config }),
  )
  const sms = drivers.map(() => new CountingStateMachine())
  const names = Array.from({ length: groups }, (_, i) => `ns${i}`)
  for (const name of names) {
    drivers.forEach((d, i) => {
      d.createGroup(name, { bootstrap: { voters: IDS, learners: [] }, stateMachine: sms[i]! })
    })
  }
  names.forEach((name, i) => {
    drivers[i % 3]!.campaign(name)
  })
  await settle(hub, drivers)
  const payload = new Uint8Array(128).fill(7)
  let done = 0
  let stop = false
  const ticker = setInterval(() => {
    for (const d of drivers) d.tick()
  }, 50)
  const loops: Promise<void>[] = []
  names.forEach((name, i) => {
    const leader = drivers[i % 3]!
    for (let w = 0; w < inflight; w++) {
      loops.push(
        (async () => {
          while (!stop) {
            await leader.propose(name, payload)
            done++
          }
        })(),
      )
    }
  })
  // Warm up (JIT, slab and map growth) before counting.
  await new Promise<void>((resolve) => setTimeout(resolve, durationMs / 4))
  const warm = done
  const t1 = performance.now()
  const cpu0 = process.cpuUsage()
  await new Promise<void>((resolve) => setTimeout(resolve, durationMs))
  stop = true
  const elapsed = (performance.now() - t1) / 1000
  const cpu = process.cpuUsage(cpu0)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  const counted = done - warm
  await Promise.all(loops)
  clearInterval(ticker)
  const turns = drivers.map((d) => d.stats().turns).reduce((a, b) => a + b, 0)
  log(
    `throughput: ${groups} groups x ${inflight} in flight, ${counted} entries in ${elapsed.toFixed(2)} s, ` +
      `${turns} turns across 3 drivers (${(counted / Math.max(1, turns / 3)).toFixed(0)} entries per leader turn)`,
  )
  for (const d of drivers) await d.close()
  // Per CPU second as well: the machine is shared, and wall-clock rates drop when others run.
  return { perSecond: counted / elapsed, perCpuSecond: counted / cpuSeconds }
}

/** Frames per heartbeat interval across the cluster, once elections are over (and quiescence settled). */
async function idleFrames(groups: number, quiesce: boolean, log: (l: string) => void) {
  const config: MultiRaftConfig = { raft: { quiesceAfterTicks: quiesce ? 3 : 0 } }
  const c = new TestCluster(IDS, SEED, config)
  const names = c.createGroups(groups)
  names.forEach((name, i) => {
    c.members[i % 3]!.driver.campaign(name)
  })
  await c.settle()
  await c.tickUntil(() => names.every((g) => c.agreedLeader(g)), 100, 'leaders')
  if (quiesce)
    await c.tickUntil(() => c.members.every((m) => m.driver.stats().activeGroups === 0), 50, 'quiesced')
  for (let i = 0; i < 3; i++) await c.tickAll()
  const intervals = 20
  const before = c.hub.framesSent
  const t0 = performance.now()
  for (let i = 0; i < intervals; i++) await c.tickAll()
  const ms = (performance.now() - t0) / intervals
  const frames = (c.hub.framesSent - before) / intervals
  const active = c.members.map((m) => m.driver.stats().activeGroups).join('/')
  log(
    `idle ${quiesce ? 'quiesced' : 'not quiesced'}: ${groups} groups, ${frames} frames per heartbeat, ` +
      `${ms.toFixed(2)} ms per cluster tick, active groups per node ${active}`,
  )
  await c.close()
  return { frames, ms }
}

const group: BenchGroup = async ({ quick, log }) => {
  const figures: BenchFigure[] = []
  const groups = quick ? 6 : 12
  const inflight = quick ? 256 : 1024
  const rate = await throughput(groups, inflight, quick ? 1_000 : 5_000, log)
  figures.push(
    {
      key: 'raft.inmem_entries_per_s',
      value: Math.round(rate.perSecond),
      unit: 'entries/s',
      target: '>= 300000',
      note: `3 drivers in one process, ${groups} groups, ${inflight} x 128 B in flight per group`,
    },
    {
      key: 'raft.inmem_entries_per_cpu_s',
      value: Math.round(rate.perCpuSecond),
      unit: 'entries/cpu-s',
      note: 'the same run per second of this process CPU time (steadier than wall time on a shared machine)',
    },
  )
  const idleGroups = quick ? 200 : 1_000
  const idle = await idleFrames(idleGroups, false, log)
  figures.push({
    key: 'raft.idle_msgs_per_heartbeat',
    value: idle.frames,
    unit: 'frames',
    target: '<= 6',
    note: `${idleGroups} groups on 3 nodes, quiescence off`,
  })
  figures.push({
    key: 'raft.idle_tick_ms',
    value: Number(idle.ms.toFixed(2)),
    unit: 'ms',
    note: `one heartbeat interval of ${idleGroups} active groups on 3 nodes in one process, delivery included`,
  })
  figures.push({
    key: 'raft.quiesced_msgs_per_heartbeat',
    value: (await idleFrames(idleGroups, true, log)).frames,
    unit: 'frames',
    target: '0',
    note: `${idleGroups} groups on 3 nodes, quiesceAfterTicks 3`,
  })
  return figures
}

export default group
