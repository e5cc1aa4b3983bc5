/**
 * The chaos workloads and their clients. A client runs one operation at a time against a random
 * live node, records `invoke` and one completion in the history, and retries where that is safe:
 * after a certain failure (nothing applied), and — for an operation sent with an idempotency key —
 * after an unknown outcome too (the key makes it run at most once). Half of the writes go without
 * a key and are never retried after an unknown outcome, so both request paths are exercised.
 */
import type { HistoryEvent } from './check/index.js'
import type { ChaosCluster } from './cluster.js'
import { type Attempt, post } from './http.js'
import type { Random } from './random.js'

/** One operation a client is about to run. */
export interface PlannedOp {
  f: string
  /** Key in the history: `<workload>/<actor>`. */
  key: string
  actor: string
  input: unknown
  method: string
  payload: string
  /** Whether it may change state (reads are retried freely). */
  write: boolean
}

/** A workload: what its actors are, what operations a client picks, how replies decode. */
export interface Workload {
  name: 'register' | 'list' | 'counter' | 'ws'
  namespace: string
  /** Example actor module (examples/<module>). */
  module: 'register' | 'list-append' | 'counter' | 'chat'
  actors: string[]
  /** The next operation of a client; `seen` is the client's memory (last value per actor). */
  next(rnd: Random, client: number, n: number, seen: Map<string, unknown>): PlannedOp
  /** A 200 reply as the operation's output. */
  output(op: PlannedOp, body: string): unknown
  /** The read that gives an actor's final state. */
  finalRead(actor: string): PlannedOp
  /** A write to a probe actor (not in the history) that tells whether the namespace takes writes. */
  probe(n: number): PlannedOp
}

const plan = (
  w: string,
  actor: string,
  f: string,
  input: unknown,
  method: string,
  payload: string,
  write: boolean,
) => ({
  f,
  key: `${w}/${actor}`,
  actor,
  input,
  method,
  payload,
  write,
})

/**
 * Read / write / compare-and-set registers (examples/register); every written value is unique.
 * With `staleReads` the reads ask for `?consistency=stale` (served from the nearest replica, not
 * linearizable): a run that must fail, which checks the whole pipeline end to end.
 */
export function registerWorkload(actors = 4, options: { staleReads?: boolean } = {}): Workload {
  const method = options.staleReads ? 'read?consistency=stale' : 'read'
  const read = (a: string) => plan('register', a, 'read', null, method, '', false)
  return {
    name: 'register',
    namespace: 'chaos-reg',
    module: 'register',
    actors: Array.from({ length: actors }, (_, i) => `r${i}`),
    next(rnd, client, n, seen) {
      const actor = this.actors[rnd.int(this.actors.length)]!
      const value = `${client}-${n}`
      const roll = rnd.int(10)
      if (roll < 4) return read(actor)
      if (roll < 7) return plan('register', actor, 'write', value, 'write', value, true)
      const expect = (seen.get(actor) as string | null | undefined) ?? null
      const input = { expect, value }
      return plan('register', actor, 'cas', input, 'cas', JSON.stringify(input), true)
    },
    output(op, body) {
      if (op.f === 'read') return body === '' ? null : body
      if (op.f === 'write') return 'ok'
      return JSON.parse(body) as { ok: boolean; value: string | null }
    },
    finalRead: read,
    probe: (n) => plan('register', 'probe', 'write', `p${n}`, 'write', `p${n}`, true),
  }
}

/** Append unique values to lists and read them whole (examples/list-append). */
export function listWorkload(actors = 3): Workload {
  const read = (a: string) => plan('list', a, 'read', null, 'read', '', false)
  return {
    name: 'list',
    namespace: 'chaos-list',
    module: 'list-append',
    actors: Array.from({ length: actors }, (_, i) => `l${i}`),
    next(rnd, client, n) {
      const actor = this.actors[rnd.int(this.actors.length)]!
      if (rnd.int(10) < 3) return read(actor)
      const value = `${client}-${n}`
      return plan('list', actor, 'append', value, 'append', value, true)
    },
    output(op, body) {
      return op.f === 'read' ? (JSON.parse(body) as string[]) : body
    },
    finalRead: read,
    probe: (n) => plan('list', 'probe', 'append', `p${n}`, 'append', `p${n}`, true),
  }
}

/** Increment counters by 1 and read them (examples/counter). */
export function counterWorkload(actors = 3): Workload {
  const read = (a: string) => plan('counter', a, 'read', null, 'get', '', false)
  return {
    name: 'counter',
    namespace: 'chaos-count',
    module: 'counter',
    actors: Array.from({ length: actors }, (_, i) => `c${i}`),
    next(rnd) {
      const actor = this.actors[rnd.int(this.actors.length)]!
      if (rnd.int(10) < 2) return read(actor)
      return plan('counter', actor, 'add', 1, 'increment', '1', true)
    },
    output(_op, body) {
      return Number(body)
    },
    finalRead: read,
    probe: () => plan('counter', 'probe', 'add', 1, 'increment', '1', true),
  }
}

/** The history being recorded: events in completion order, each also handed to `sink`. */
export class HistoryRecorder {
  readonly events: HistoryEvent[] = []
  private readonly t0 = performance.now()

  constructor(private readonly sink: (e: HistoryEvent) => void = () => {}) {}

  /** Milliseconds since the recorder was made. */
  now(): number {
    return Math.round((performance.now() - this.t0) * 1000) / 1000
  }

  record(e: Omit<HistoryEvent, 'time'>): HistoryEvent {
    const event = { ...e, time: this.now() } as HistoryEvent
    this.events.push(event)
    this.sink(event)
    return event
  }
}

/** Timing of the clients' requests. */
export interface ClientTiming {
  /** One attempt gives up after this long. */
  attemptTimeoutMs: number
  /** An operation stops retrying this long after it was invoked. */
  opTimeoutMs: number
  /** Pause between a client's operations (and before a retry), at most. */
  thinkMsMax: number
}

export const DEFAULT_TIMING: ClientTiming = { attemptTimeoutMs: 3_000, opTimeoutMs: 8_000, thinkMsMax: 60 }

/** Counts of what the clients saw, for the report. */
export interface ClientStats {
  attempts: number
  retries: number
  /** Error codes of attempts that were not `ok`, with counts. */
  errors: Record<string, number>
}

/** Runs one operation with its retries; resolves with the completion to record. */
export async function perform(
  cluster: ChaosCluster,
  workload: Workload,
  op: PlannedOp,
  rnd: Random,
  idempotencyKey: string | undefined,
  timing: ClientTiming,
  stats: ClientStats,
): Promise<{ type: 'ok' | 'fail' | 'info'; value: unknown; error?: string; node?: number }> {
  const deadline = performance.now() + timing.opTimeoutMs
  let unknown: string | undefined
  let last: Attempt | undefined
  let node: number | undefined
  for (let attempt = 0; ; attempt++) {
    const targets = cluster.members()
    const target = targets[rnd.int(Math.max(1, targets.length))]
    if (target) {
      node = target.index
      const left = Math.max(100, Math.min(timing.attemptTimeoutMs, deadline - performance.now()))
      stats.attempts++
      if (attempt > 0) stats.retries++
      last = await post(
        target.url,
        `/v1/namespaces/${workload.namespace}/actors/${encodeURIComponent(op.actor)}/${op.method}`,
        op.payload,
        { timeoutMs: left, ...(idempotencyKey ? { key: idempotencyKey } : {}) },
      )
      if (last.type === 'ok') return { type: 'ok', value: workload.output(op, last.body), node }
      const code = last.error ?? 'unknown'
      stats.errors[code] = (stats.errors[code] ?? 0) + 1
      if (last.type === 'info') unknown = code
      // Without a key, a write whose outcome is unknown must not be sent again.
      if (last.type === 'info' && op.write && !idempotencyKey) break
    }
    if (performance.now() + 50 > deadline) break
    await new Promise((r) => setTimeout(r, 20 + rnd.int(Math.max(1, timing.thinkMsMax * 2))))
  }
  if (unknown !== undefined)
    return { type: 'info', value: null, error: unknown, ...(node !== undefined ? { node } : {}) }
  return {
    type: 'fail',
    value: null,
    error: last?.error ?? 'no-node',
    ...(node !== undefined ? { node } : {}),
  }
}

/** One client's loop: operations until `stop()` says so. */
export async function runClient(
  client: number,
  cluster: ChaosCluster,
  workload: Workload,
  rnd: Random,
  history: HistoryRecorder,
  timing: ClientTiming,
  stats: ClientStats,
  stop: () => boolean,
  runTag: string,
): Promise<void> {
  const seen = new Map<string, unknown>()
  for (let n = 0; !stop(); n++) {
    const op = workload.next(rnd, client, n, seen)
    const key = op.write && rnd.int(2) === 0 ? `${runTag}-${client}-${n}` : undefined
    history.record({
      process: client,
      type: 'invoke',
      f: op.f,
      key: op.key,
      value: op.input,
      ...(key ? { idempotencyKey: key } : {}),
    })
    const done = await perform(cluster, workload, op, rnd, key, timing, stats)
    history.record({
      process: client,
      type: done.type,
      f: op.f,
      key: op.key,
      value: done.value,
      ...(done.error ? { error: done.error } : {}),
      ...(done.node !== undefined ? { node: String(done.node) } : {}),
    })
    if (done.type === 'ok') remember(op, done.value, seen)
    await new Promise((r) => setTimeout(r, rnd.int(timing.thinkMsMax + 1)))
  }
}

/** What a register client believes an actor holds, for its next cas. */
function remember(op: PlannedOp, value: unknown, seen: Map<string, unknown>): void {
  if (op.f === 'read') seen.set(op.actor, value)
  else if (op.f === 'write') seen.set(op.actor, op.input)
  else if (op.f === 'cas') seen.set(op.actor, (value as { value: unknown }).value)
}
