/**
 * The counter check (examples/counter): `add n` (n > 0) → the new count, `read` → the count. Per
 * key, every value a client saw — a read's, or an add's new count — lies between the adds
 * acknowledged before the op began and the adds (not certainly failed) begun before it ended; no
 * two adds answered the same count; and the final value (the last read to complete) lies between
 * the acknowledged and the attempted total.
 */
import { byKey, type Operation } from './history.js'

export interface CounterViolation {
  key: string
  kind: 'out-of-bounds' | 'final-out-of-bounds' | 'duplicate-result'
  message: string
  ops: number[]
}

export interface CounterKeyResult {
  key: string
  /** Sum of acknowledged adds. */
  acknowledged: number
  /** Sum of adds that may have happened (acknowledged or unknown). */
  attempted: number
  /** The last read's value, or null when no read succeeded. */
  final: number | null
  violations: CounterViolation[]
}

/** Checks every key's counter history. */
export function checkCounter(ops: readonly Operation[]): CounterKeyResult[] {
  const groups = byKey(ops)
  return [...groups.keys()].sort().map((key) => checkKey(key, groups.get(key)!))
}

function checkKey(key: string, ops: Operation[]): CounterKeyResult {
  const adds = ops.filter((op) => op.f === 'add' && op.status !== 'fail')
  const amount = (op: Operation) => Number(op.input)
  const v: CounterViolation[] = []
  const low = (op: Operation) =>
    adds.filter((a) => a.status === 'ok' && (a.ret < op.call || a === op)).reduce((s, a) => s + amount(a), 0)
  const high = (op: Operation) => adds.filter((a) => a.call <= op.ret).reduce((s, a) => s + amount(a), 0)
  const reads = ops.filter((op) => op.f === 'read' && op.status === 'ok')
  const last = reads.reduce<Operation | undefined>((a, r) => (!a || r.ret > a.ret ? r : a), undefined)
  const seen = ops.filter((op) => op.status === 'ok' && (op.f === 'read' || op.f === 'add') && op !== last)
  for (const op of seen) {
    const value = Number(op.output)
    if (value < low(op) || value > high(op)) {
      v.push({
        key,
        kind: 'out-of-bounds',
        message: `${op.f} saw ${value}, outside [${low(op)}, ${high(op)}] (acknowledged before it began, attempted before it ended)`,
        ops: [op.id],
      })
    }
  }
  const byResult = new Map<number, Operation>()
  for (const a of adds) {
    if (a.status !== 'ok') continue
    const other = byResult.get(Number(a.output))
    if (other)
      v.push({
        key,
        kind: 'duplicate-result',
        message: `two adds answered ${a.output}`,
        ops: [other.id, a.id],
      })
    byResult.set(Number(a.output), a)
  }
  const acknowledged = adds.filter((a) => a.status === 'ok').reduce((s, a) => s + amount(a), 0)
  const attempted = adds.reduce((s, a) => s + amount(a), 0)
  const final = last ? Number(last.output) : null
  // The final read normally begins after every client stopped; adds still running then count as
  // attempted only (the same bounds as for any other read).
  if (last && (final! < low(last) || final! > high(last))) {
    v.push({
      key,
      kind: 'final-out-of-bounds',
      message: `final value ${final} is outside [${low(last)} acknowledged, ${high(last)} attempted]`,
      ops: [last.id],
    })
  }
  return { key, acknowledged, attempted, final, violations: v }
}
