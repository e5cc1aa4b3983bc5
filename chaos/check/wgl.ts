/**
 * A linearizability checker: the Wing–Gong search as improved by Lowe ("Testing for
 * linearizability", 2017) — the history as a doubly linked list of call and return entries, ops
 * lifted out as they are linearized, backtracking on a stack, and a cache of (linearized set,
 * state) pairs already explored, which turns the exponential search into one that is usually
 * linear. Porcupine (Athalye) uses the same design; this is our own code.
 *
 * An `info` operation (outcome unknown) has its return at +∞: it may be linearized anywhere after
 * its invocation, including after every other op, which is the same as not having happened. A
 * model's `step` must accept any result for it.
 */
import type { Operation } from './history.js'

/** A sequential specification of one object. */
export interface Model<S> {
  init(): S
  /**
   * The state after `op` takes effect in `state`, or `undefined` when it cannot: its reported
   * result is not what the specification gives. An `info` op has no result to match.
   */
  step(state: S, op: Operation): S | undefined
  /** Equal states give equal keys (the cache compares states by key). */
  key(state: S): string
  /**
   * Drops or narrows `info` ops that cannot change the verdict (e.g. an unknown read). Must keep
   * the answer: the history is linearizable after it exactly when it was before.
   */
  simplify?(ops: Operation[]): Operation[]
}

/** What a search found. `unknown`: it gave up after `stepsMax` steps. */
export type Verdict = 'ok' | 'violation' | 'unknown'

export interface SearchOptions {
  /** Search steps (entry visits) before giving up with `unknown`. */
  stepsMax?: number
}

/** Default search budget per check: a few seconds of work at most. */
export const SEARCH_STEPS_MAX = 5_000_000

interface Entry {
  call: boolean
  time: number
  /** Index into the bitset of linearized ops (call entries only). */
  bit: number
  op: Operation | undefined
  match: Entry | undefined
  prev: Entry | undefined
  next: Entry | undefined
}

/** Whether `ops` (of one object; `fail` ops excluded by the caller) can be linearized under `model`. */
export function linearizable<S>(
  model: Model<S>,
  ops: readonly Operation[],
  options?: SearchOptions,
): Verdict {
  return check(model, ops, options?.stepsMax ?? SEARCH_STEPS_MAX).verdict
}

function check<S>(
  model: Model<S>,
  ops: readonly Operation[],
  stepsMax: number,
): { verdict: Verdict; steps: number } {
  const kept = ops.filter((op) => op.status !== 'fail')
  const simple = model.simplify ? model.simplify(kept) : kept
  const head = buildList(simple)
  return search(model, head, simple.length, stepsMax)
}

/** The entry list, sorted by time; at equal times calls come first (such ops overlap). */
function buildList(ops: readonly Operation[]): Entry {
  const entries: Entry[] = []
  for (const [bit, op] of ops.entries()) {
    const call: Entry = {
      call: true,
      time: op.call,
      bit,
      op,
      match: undefined,
      prev: undefined,
      next: undefined,
    }
    const ret: Entry = {
      call: false,
      time: op.ret,
      bit,
      op,
      match: undefined,
      prev: undefined,
      next: undefined,
    }
    call.match = ret
    entries.push(call, ret)
  }
  entries.sort((a, b) => a.time - b.time || (a.call === b.call ? a.bit - b.bit : a.call ? -1 : 1))
  const head: Entry = {
    call: false,
    time: -1,
    bit: -1,
    op: undefined,
    match: undefined,
    prev: undefined,
    next: undefined,
  }
  let last = head
  for (const e of entries) {
    e.prev = last
    last.next = e
    last = e
  }
  return head
}

function lift(e: Entry): void {
  e.prev!.next = e.next
  if (e.next) e.next.prev = e.prev
  const m = e.match!
  m.prev!.next = m.next
  if (m.next) m.next.prev = m.prev
}

function unlift(e: Entry): void {
  const m = e.match!
  m.prev!.next = m
  if (m.next) m.next.prev = m
  e.prev!.next = e
  if (e.next) e.next.prev = e
}

function search<S>(
  model: Model<S>,
  head: Entry,
  count: number,
  stepsMax: number,
): { verdict: Verdict; steps: number } {
  const bits = new Uint32Array(Math.ceil(count / 32))
  const cache = new LinearizedCache(count)
  const stack: Array<{ entry: Entry; state: S }> = []
  let state = model.init()
  let entry = head.next
  let steps = 0
  while (head.next !== undefined) {
    if (++steps > stepsMax) return { verdict: 'unknown', steps }
    // Cannot happen: the list ends in return entries.
    if (entry === undefined) return { verdict: 'violation', steps }
    if (entry.call) {
      const next = model.step(state, entry.op!)
      if (next !== undefined) {
        const w = entry.bit >>> 5
        const mask = 1 << (entry.bit & 31)
        bits[w]! |= mask
        cache.toggle(entry.bit)
        if (cache.add(model.key(next), bits)) {
          stack.push({ entry, state })
          state = next
          lift(entry)
          entry = head.next
          continue
        }
        bits[w]! &= ~mask
        cache.toggle(entry.bit)
      }
      entry = entry.next
      continue
    }
    // A return entry: the op it closes was not linearized before it, so backtrack.
    const top = stack.pop()
    if (!top) return { verdict: 'violation', steps }
    state = top.state
    bits[top.entry.bit >>> 5]! &= ~(1 << (top.entry.bit & 31))
    cache.toggle(top.entry.bit)
    unlift(top.entry)
    entry = top.entry.next
  }
  return { verdict: 'ok', steps }
}

/**
 * The (linearized set, state) pairs explored. The set is hashed incrementally (Zobrist: one random
 * 32-bit word per op, XORed in and out), and a hash hit is confirmed by comparing the sets, so the
 * cache never wrongly prunes a branch.
 */
class LinearizedCache {
  private readonly words: Uint32Array
  private hash = 0
  private readonly seen = new Map<string, Uint32Array[]>()

  constructor(count: number) {
    // A fixed xorshift sequence: the hashes only need to spread, not to be secret.
    this.words = new Uint32Array(count)
    let x = 0x9e3779b9
    for (let i = 0; i < count; i++) {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      this.words[i] = x >>> 0
    }
  }

  toggle(bit: number): void {
    this.hash = (this.hash ^ this.words[bit]!) >>> 0
  }

  /** Records `bits` in `state`; false when that pair was explored already. */
  add(state: string, bits: Uint32Array): boolean {
    const key = `${this.hash}|${state}`
    const sets = this.seen.get(key)
    if (!sets) {
      this.seen.set(key, [bits.slice()])
      return true
    }
    if (sets.some((s) => s.every((v, i) => v === bits[i]))) return false
    sets.push(bits.slice())
    return true
  }
}

/** `op` with its outcome forgotten: it may or may not have happened, at any time after its call. */
export function weaken(op: Operation): Operation {
  return { ...op, status: 'info', output: undefined, ret: Number.POSITIVE_INFINITY }
}

/**
 * The history as it stood at time `t`: ops invoked after `t` are gone, ops still running at `t`
 * are `info`. If this cut is not linearizable, no later cut is (a linearization of a later cut,
 * restricted to the ops that completed by `t`, would be one of this cut).
 */
export function cutAt(ops: readonly Operation[], t: number): Operation[] {
  return ops.filter((op) => op.call <= t).map((op) => (op.ret > t && op.status !== 'info' ? weaken(op) : op))
}

/** A minimal explanation of a violation. */
export interface Violation {
  /** The earliest cut (`cutAt`) of the history that is not linearizable. */
  at: number
  /** The ops of that cut whose reported outcomes cannot all hold, in invocation order. */
  ops: Operation[]
}

/**
 * A smallest explanation of a violation: the ops whose reported outcomes cannot all hold. First
 * the earliest cut of the history that is not linearizable, then every op of it whose outcome can
 * be forgotten (made `info`) without making the cut linearizable is forgotten. The result is
 * 1-minimal: forgetting any one of the returned ops' outcomes makes the cut linearizable (with the
 * forgotten ops still in it, as may-have-happened). `undefined` when `ops` is linearizable or the
 * search gave up.
 */
export function minimalViolation<S>(
  model: Model<S>,
  ops: readonly Operation[],
  options?: SearchOptions,
): Violation | undefined {
  const kept = ops.filter((op) => op.status !== 'fail')
  if (linearizable(model, kept, options) !== 'violation') return undefined
  const times = [...new Set(kept.filter((op) => op.status === 'ok').map((op) => op.ret))].sort(
    (a, b) => a - b,
  )
  // Binary search for the earliest failing cut (the whole history fails, so the last cut does).
  let lo = 0
  let hi = times.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (linearizable(model, cutAt(kept, times[mid]!), options) === 'violation') hi = mid
    else lo = mid + 1
  }
  const cut = cutAt(kept, times[lo]!)
  // Forgetting outcomes widens the search, so each trial gets a twentieth of the budget and all of
  // them four budgets; a trial that gives up keeps its ops, and when the total runs out the rest
  // are kept: the result is then still a violation, perhaps not a minimal one.
  const budget = options?.stepsMax ?? SEARCH_STEPS_MAX
  let left = 4 * budget
  const fails = () => {
    const { verdict, steps } = check(model, cut, Math.min(left, Math.ceil(budget / 20)))
    left -= steps
    return verdict === 'violation'
  }
  // Forget outcomes in halving chunks (as delta debugging does), latest ops first, down to one op
  // at a time: a chunk whose outcomes can all go costs one search instead of one per op.
  let open = cut
    .map((op, i) => ({ op, i }))
    .filter(({ op }) => op.status === 'ok')
    .sort((a, b) => b.op.ret - a.op.ret || b.op.id - a.op.id)
  for (let size = Math.max(1, open.length >>> 1); ; size = Math.max(1, size >>> 1)) {
    const keep: typeof open = []
    for (let from = 0; from < open.length; from += size) {
      const chunk = open.slice(from, from + size)
      if (left <= 0) {
        keep.push(...chunk)
        continue
      }
      for (const { op, i } of chunk) cut[i] = weaken(op)
      if (fails()) continue
      for (const { op, i } of chunk) cut[i] = op
      keep.push(...chunk)
    }
    const done = size === 1
    open = keep
    if (done) break
  }
  return { at: times[lo]!, ops: cut.filter((op) => op.status === 'ok').sort((a, b) => a.call - b.call) }
}
