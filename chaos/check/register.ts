/**
 * The register model (examples/register): `read` → the value (`null` before any write), `write v`,
 * and `cas {expect, value}` → `{ok, value}`, where a failed cas reports the value it found (so it
 * is also a read). Each key is an independent register; linearizability is local (Herlihy & Wing),
 * so each key's history is checked on its own.
 */
import { byKey, type Operation } from './history.js'
import {
  linearizable,
  type Model,
  minimalViolation,
  type SearchOptions,
  type Verdict,
  type Violation,
} from './wgl.js'

/** A register's value; `null` before the first write. */
export type RegisterValue = string | null

/** The input of a `cas`. */
export interface CasInput {
  expect: RegisterValue
  value: string
}

/** The result of a `cas`: whether it swapped, and the value it left (the new one, or the one it found). */
export interface CasOutput {
  ok: boolean
  value: RegisterValue
}

function step(state: RegisterValue, op: Operation): RegisterValue | undefined {
  const known = op.status === 'ok'
  switch (op.f) {
    case 'read':
      return !known || op.output === state ? state : undefined
    case 'write':
      return op.input as string
    case 'cas': {
      const { expect, value } = op.input as CasInput
      const swaps = state === expect
      if (!known) return swaps ? value : state
      const out = op.output as CasOutput
      if (out.ok !== swaps) return undefined
      if (swaps) return out.value === value ? value : undefined
      return out.value === state ? state : undefined
    }
    default:
      throw new TypeError(`Cannot check register op '${op.f}': expected read, write or cas`)
  }
}

/**
 * Simplifies the `info` ops without changing the verdict, which keeps the search small when a
 * partition leaves many writes with unknown outcomes:
 *
 * - An unknown read changes nothing: dropped.
 * - An unknown write (or swap) matters only if its value is *relevant*: seen by a determinate op
 *   (read, found by a failed cas, expected by a successful one), or expected by a relevant unknown
 *   cas (computed to a fixpoint). Others are dropped: if one took effect, its value was replaced
 *   before any determinate op looked (one in between would have seen it), and the unknown ops
 *   that ran in between are irrelevant too or may be moved to the end.
 * - An unknown write of a value only it writes, which determinate ops saw, must have taken effect
 *   before the first of them returned: its return is set to that time (it stays `info`).
 */
function simplify(ops: Operation[]): Operation[] {
  const written = (op: Operation) => (op.f === 'write' ? (op.input as string) : (op.input as CasInput).value)
  const writers = new Map<RegisterValue, number>()
  const seenBy = new Map<RegisterValue, number>()
  const see = (v: RegisterValue, t: number) => seenBy.set(v, Math.min(t, seenBy.get(v) ?? t))
  const unknown: Operation[] = []
  for (const op of ops) {
    if (op.f !== 'read') writers.set(written(op), (writers.get(written(op)) ?? 0) + 1)
    if (op.status !== 'ok') {
      if (op.f !== 'read') unknown.push(op)
      continue
    }
    if (op.f === 'read') see(op.output as RegisterValue, op.ret)
    if (op.f === 'cas') {
      const out = op.output as CasOutput
      see(out.ok ? (op.input as CasInput).expect : out.value, op.ret)
    }
  }
  const relevant = new Set<RegisterValue>(seenBy.keys())
  const kept = new Set<Operation>()
  for (let grew = true; grew; ) {
    grew = false
    for (const op of unknown) {
      if (kept.has(op) || !relevant.has(written(op))) continue
      kept.add(op)
      if (op.f === 'cas' && !relevant.has((op.input as CasInput).expect)) {
        relevant.add((op.input as CasInput).expect)
        grew = true
      }
    }
  }
  const out: Operation[] = []
  for (const op of ops) {
    if (op.status === 'ok') out.push(op)
    else if (!kept.has(op)) continue
    else {
      const seenAt = seenBy.get(written(op))
      if (seenAt !== undefined && writers.get(written(op)) === 1)
        out.push({ ...op, ret: Math.max(op.call, seenAt) })
      else out.push(op)
    }
  }
  return out
}

/** The register as a `Model`. */
export const registerModel: Model<RegisterValue> = {
  init: () => null,
  step,
  key: (s) => (s === null ? '\u0000' : `=${s}`),
  simplify,
}

/** The verdict on one key. */
export interface KeyResult {
  key: string
  verdict: Verdict
  /** Ops checked (fail ops excluded). */
  ops: number
  /** On a violation: the minimal set of ops whose outcomes cannot all hold. */
  violation?: Violation
}

/** Checks every key's register history; keys in name order. */
export function checkRegister(ops: readonly Operation[], options?: SearchOptions): KeyResult[] {
  const results: KeyResult[] = []
  const groups = byKey(ops)
  for (const key of [...groups.keys()].sort()) {
    const keyOps = groups.get(key)!.filter((op) => op.status !== 'fail')
    const verdict = linearizable(registerModel, keyOps, options)
    const result: KeyResult = { key, verdict, ops: keyOps.length }
    if (verdict === 'violation') {
      const core = minimalViolation(registerModel, keyOps, options)
      if (core) result.violation = core
    }
    results.push(result)
  }
  return results
}
