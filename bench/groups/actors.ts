/**
 * Benchmarks of the actor runtime (runtime only: an in-memory store, no Raft, no network).
 * Figures are printed, never asserted.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { CallResult } from '../../actors/index.js'
import { createActorRuntime } from '../../actors/index.js'
import type { StatePage, StateReader, StateWrite } from '../../storage/index.js'
import { exampleModule } from '../../test/actors/examples.js'
import { percentile } from '../script.js'
import type { BenchFigure, BenchGroup } from '../types.js'

/** A store that keeps state in memory (`keep`), or keeps nothing (every actor loads empty). */
class MemoryStore implements StateReader {
  private readonly actors = new Map<string, Array<[string, Uint8Array]>>()
  constructor(private readonly keep: boolean) {}
  apply(writes: StateWrite[]): void {
    if (!this.keep) return
    for (const w of writes) {
      const entries = (this.actors.get(w.actor) ?? []).filter(([k]) => k !== w.key)
      if (w.value) entries.push([w.key, w.value])
      this.actors.set(w.actor, entries)
    }
  }
  async loadActor(actor: string): Promise<Array<[string, Uint8Array]>> {
    return this.actors.get(actor) ?? []
  }
  async get(): Promise<Uint8Array | undefined> {
    return undefined
  }
  async list(): Promise<StatePage> {
    return { entries: [] }
  }
  async actorBytes(): Promise<number> {
    return 0
  }
}

/** A full GC before heap readings (the runner starts node without --expose-gc). */
function collect(): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

const empty = new Uint8Array()

async function warmCalls(counter: Uint8Array, n: number): Promise<number[]> {
  const store = new MemoryStore(true)
  const runtime = createActorRuntime({ stateOf: () => store })
  await runtime.deploy('bench', counter)
  const commit = (r: CallResult) => {
    store.apply(r.writes)
    runtime.commit('bench', 'a', r.callId)
  }
  for (let i = 0; i < 1_000; i++)
    commit(await runtime.call('bench', 'a', 'increment', empty, { now: 1, seed: 1 }))
  const us: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    const r = await runtime.call('bench', 'a', 'increment', empty, { now: 1, seed: 1 })
    us.push((performance.now() - t) * 1000)
    commit(r)
  }
  return us.sort((a, b) => a - b)
}

async function coldStarts(counter: Uint8Array, n: number): Promise<number[]> {
  const store = new MemoryStore(true)
  const runtime = createActorRuntime({ stateOf: () => store })
  await runtime.deploy('bench', counter)
  const ms: number[] = []
  for (let i = 0; i < n; i++) {
    const actor = `a${i}`
    const first = await runtime.call('bench', actor, 'increment', empty)
    store.apply(first.writes)
    runtime.commit('bench', actor, first.callId)
    runtime.discard('bench', actor) // nothing pending: the same as an eviction
    const t = performance.now()
    await runtime.call('bench', actor, 'get', empty)
    ms.push(performance.now() - t)
    runtime.discard('bench', actor)
  }
  return ms.sort((a, b) => a - b)
}

async function deployCached(counter: Uint8Array, n: number): Promise<number[]> {
  const runtime = createActorRuntime({ stateOf: () => new MemoryStore(false) })
  await runtime.deploy('warmup', counter)
  const ms: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await runtime.deploy(`ns${i % 8}`, counter) // compile cache hit: validation of grants + instantiation
    ms.push(performance.now() - t)
  }
  return ms.sort((a, b) => a - b)
}

/** Touches `n` actors with the given caps; returns heap and RSS growth and the runtime's count. */
async function touchActors(
  counter: Uint8Array,
  n: number,
  residentActorsMax: number,
  log: (line: string) => void,
) {
  const store = new MemoryStore(false)
  const runtime = createActorRuntime({ stateOf: () => store, limits: { residentActorsMax } })
  await runtime.deploy('bench', counter)
  collect()
  const heap0 = process.memoryUsage().heapUsed
  const checkpoints: string[] = []
  for (let i = 0; i < n; i++) {
    const actor = `actor-${i}`
    const r = await runtime.call('bench', actor, 'increment', empty)
    runtime.commit('bench', actor, r.callId)
    if ((i + 1) % (n / 4) === 0)
      checkpoints.push(`${i + 1}: rss ${(process.memoryUsage().rss / (1 << 20)).toFixed(0)} MB`)
  }
  log(`touched ${n} actors (residentActorsMax ${residentActorsMax}); ${checkpoints.join(', ')}`)
  collect()
  const mem = process.memoryUsage()
  return { heapDelta: mem.heapUsed - heap0, heapUsed: mem.heapUsed, rss: mem.rss, stats: runtime.stats() }
}

const group: BenchGroup = async ({ quick, log }) => {
  const counter = await exampleModule('counter')
  const figures: BenchFigure[] = []
  const warm = await warmCalls(counter, quick ? 2_000 : 50_000)
  figures.push(
    {
      key: 'actors.warm_call_p50_us',
      value: percentile(warm, 50),
      unit: 'us',
      target: '<= 20',
      note: 'counter increment, resident',
    },
    { key: 'actors.warm_call_p99_us', value: percentile(warm, 99), unit: 'us' },
  )
  const cold = await coldStarts(counter, quick ? 200 : 2_000)
  figures.push({
    key: 'actors.cold_start_p50_ms',
    value: percentile(cold, 50),
    unit: 'ms',
    target: '<= 1',
    note: 'evicted actor: state load + call (namespace instance is shared)',
  })
  const deploy = await deployCached(counter, quick ? 50 : 400)
  figures.push({
    key: 'actors.instantiate_p50_ms',
    value: percentile(deploy, 50),
    unit: 'ms',
    note: 'deploy of a cached module: grants check + new instance + snapshot',
  })
  const many = await touchActors(counter, quick ? 10_000 : 100_000, 10_000, log)
  log(
    `resident ${many.stats.residentActors}, evictions ${many.stats.evictions}, heap after GC ${(process.memoryUsage().heapUsed / (1 << 20)).toFixed(0)} MB`,
  )
  figures.push({
    key: 'actors.rss_mb_100k_actors',
    value: many.rss / (1 << 20),
    unit: 'MB',
    target: 'bounded by caps',
    note: `${quick ? '10k' : '100k'} actors touched, residentActorsMax 10000, resident ${many.stats.residentActors}`,
  })
  figures.push({
    key: 'actors.heap_mb_100k_actors',
    value: many.heapUsed / (1 << 20),
    unit: 'MB',
    note: 'live JS heap after a full GC, same run (whole bench process)',
  })
  const idle = await touchActors(counter, quick ? 2_000 : 20_000, 1_000_000, log)
  const perActorKb = idle.heapDelta / idle.stats.residentActors / 1024
  log(`resident: ${idle.stats.residentActors} actors, runtime accounts ${idle.stats.residentBytes} bytes`)
  figures.push({
    key: 'actors.resident_kb_per_actor',
    value: perActorKb,
    unit: 'KB',
    target: '<= 64',
    note: `heap growth / resident actors (${idle.stats.residentActors})`,
  })
  return figures
}

export default group
