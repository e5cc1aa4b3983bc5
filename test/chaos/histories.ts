/**
 * Helpers for the checker tests: compact op builders, a brute-force reference checker, and
 * generators of histories from sequential models with random concurrency windows.
 */
import type { CasInput, HistoryEvent, Model, Operation } from '../../chaos/check/index.js'

let nextId = 0

/** An op on key `k` (default 'x'); `ret` undefined or Infinity makes it `info`. */
export function op(
  f: string,
  input: unknown,
  output: unknown,
  call: number,
  ret?: number,
  extra: Partial<Operation> = {},
): Operation {
  const info = ret === undefined || ret === Number.POSITIVE_INFINITY
  return {
    id: nextId++,
    process: 0,
    f,
    key: 'x',
    input,
    output: info ? undefined : output,
    status: info ? 'info' : 'ok',
    call,
    ret: info ? Number.POSITIVE_INFINITY : ret,
    ...extra,
  }
}

export const w = (v: string, call: number, ret?: number) => op('write', v, 'ok', call, ret)
export const r = (v: string | null, call: number, ret?: number) => op('read', null, v, call, ret)
export const cas = (
  expect: string | null,
  value: string,
  ok: boolean,
  found: string | null,
  call: number,
  ret?: number,
) => op('cas', { expect, value } satisfies CasInput, { ok, value: ok ? value : found }, call, ret)

/**
 * The definition, by exhaustion: some order of the ops that respects real time (an op that
 * returned before another was invoked comes first) runs through the model with every determinate
 * result matching; `info` ops may be left out. Exponential: for a handful of ops only.
 */
export function bruteForce<S>(model: Model<S>, ops: readonly Operation[]): boolean {
  const live = ops.filter((o) => o.status !== 'fail')
  const rec = (state: S, remaining: Operation[]): boolean => {
    if (remaining.every((o) => o.status === 'info')) return true
    for (const o of remaining) {
      if (remaining.some((p) => p !== o && p.ret < o.call)) continue
      const next = model.step(state, o)
      if (
        next !== undefined &&
        rec(
          next,
          remaining.filter((p) => p !== o),
        )
      )
        return true
    }
    return false
  }
  return rec(model.init(), live)
}

/** A small seeded PRNG (mulberry32), for generators driven by a fast-check integer. */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

/** Gives each op a process so no process has two ops at once, and lists the events in time order. */
export function toEvents(ops: readonly Operation[]): HistoryEvent[] {
  const busyUntil: number[] = []
  const events: Array<HistoryEvent & { order: number }> = []
  for (const o of [...ops].sort((a, b) => a.call - b.call)) {
    let p = busyUntil.findIndex((t) => t < o.call)
    if (p < 0) p = busyUntil.push(0) - 1
    busyUntil[p] = o.ret
    events.push({ process: p, type: 'invoke', f: o.f, key: o.key, value: o.input, time: o.call, order: 0 })
    if (o.ret !== Number.POSITIVE_INFINITY)
      events.push({
        process: p,
        type: o.status,
        f: o.f,
        key: o.key,
        value: o.status === 'ok' ? o.output : null,
        time: o.ret,
        order: 1,
      })
  }
  // An op may return at the instant it was called: its invocation comes first.
  events.sort((a, b) => a.time - b.time || a.order - b.order)
  return events.map(({ order: _, ...e }) => e)
}

export interface GenOptions {
  steps: number
  /** Largest distance between an op's call or return and its linearization point. */
  window: number
  /** Percent of determinate ops reported as `info` instead. */
  infoPercent: number
  /** Percent of extra ops that never took effect, reported as `info`. */
  phantomPercent: number
  /** Percent of extra ops that never took effect, reported as `fail`. */
  failPercent: number
}

/**
 * A register history from a sequential run: op i takes effect at time 10·i + 5 and is seen from
 * `call` ≤ that point ≤ `ret`. Written values are unique; cas expects the current value or an
 * old one at random. So the history is linearizable by construction.
 */
export function registerHistory(seed: number, g: GenOptions, key = 'x'): Operation[] {
  const rnd = prng(seed)
  const ops: Operation[] = []
  const written: string[] = []
  let state: string | null = null
  let id = 0
  const window = (t: number) => ({ call: t - rnd(g.window + 1), ret: t + rnd(g.window + 1) })
  for (let i = 0; i < g.steps; i++) {
    const t = 10 * i + 5
    const { call, ret } = window(t)
    const base = { id: id++, process: 0, key, call, ret, status: 'ok' as const }
    const kind = rnd(3)
    if (kind === 0) {
      ops.push({ ...base, f: 'read', input: null, output: state })
    } else if (kind === 1) {
      const v = `w${i}`
      ops.push({ ...base, f: 'write', input: v, output: 'ok' })
      written.push(v)
      state = v
    } else {
      const expect = rnd(2) === 0 || written.length === 0 ? state : written[rnd(written.length)]!
      const value = `c${i}`
      const ok = expect === state
      ops.push({ ...base, f: 'cas', input: { expect, value }, output: { ok, value: ok ? value : state } })
      if (ok) {
        written.push(value)
        state = value
      }
    }
    if (rnd(100) < g.infoPercent)
      Object.assign(ops[ops.length - 1]!, { status: 'info', output: undefined, ret: Infinity })
    if (rnd(100) < g.phantomPercent) {
      const c = window(t).call
      ops.push({
        id: id++,
        process: 0,
        key,
        call: c,
        ret: Infinity,
        status: 'info',
        f: 'write',
        input: `p${i}`,
        output: undefined,
      })
    }
    if (rnd(100) < g.failPercent) {
      const wnd = window(t)
      ops.push({
        id: id++,
        process: 0,
        key,
        ...wnd,
        status: 'fail',
        f: 'write',
        input: `f${i}`,
        output: undefined,
      })
    }
  }
  return ops
}

/** Ops in the form `operations()` would rebuild them from `toEvents` (ids by invocation order). */
export function normalize(ops: readonly Operation[]): Operation[] {
  return [...ops].sort((a, b) => a.call - b.call).map((o, id) => ({ ...o, id }))
}
