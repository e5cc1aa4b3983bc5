/**
 * Histories as the chaos workloads record them (one JSON object per line, after Jepsen): every
 * operation is an `invoke` event followed by exactly one completion from the same process — `ok`
 * (it happened, `value` is its result), `fail` (it certainly did not happen) or `info` (unknown: it
 * may or may not have happened, and if it did, at any time after its invocation).
 */

/** What an event says about its operation. */
export type EventType = 'invoke' | 'ok' | 'fail' | 'info'

/** One line of `history.jsonl`. */
export interface HistoryEvent {
  /** The client that ran the operation; a client runs one operation at a time. */
  process: number
  type: EventType
  /** The operation: `read`, `write`, `cas`, `append`, `add`. */
  f: string
  /** The object it acts on (an actor id); histories are checked per key. */
  key: string
  /** On `invoke` the operation's input, on `ok` its result; otherwise informative only. */
  value: unknown
  /** Milliseconds since the run began. */
  time: number
  /** On `fail`/`info`: the error code or reason. */
  error?: string
  /** The node the client sent the (last) request to. */
  node?: string
  /** On `invoke`: the idempotency key every attempt carried, if any (such an op may be retried). */
  idempotencyKey?: string
}

/** How an operation ended. */
export type OpStatus = 'ok' | 'fail' | 'info'

/** An invocation paired with its completion. */
export interface Operation {
  /** Position among the history's operations, in invocation order; stable across checks. */
  id: number
  process: number
  f: string
  key: string
  input: unknown
  /** The result (`ok` only). */
  output: unknown
  status: OpStatus
  /** Invocation time. */
  call: number
  /** Completion time; `Infinity` for an `info` operation (it may take effect at any later time). */
  ret: number
  /** The completion's error code, if any. */
  error?: string
}

/**
 * Pairs each process's invocations with their completions. An invocation left open at the end of
 * the history is `info`. Throws `TypeError` on a malformed history (a completion without an
 * invocation, two open invocations in one process, or a completion that differs in `f`/`key`).
 */
export function operations(events: readonly HistoryEvent[]): Operation[] {
  const open = new Map<number, Operation>()
  const out: Operation[] = []
  for (const [i, e] of events.entries()) {
    if (e.type === 'invoke') {
      if (open.has(e.process))
        throw new TypeError(`Bad history: process ${e.process} invokes again at event ${i} before completing`)
      const op: Operation = {
        id: out.length,
        process: e.process,
        f: e.f,
        key: e.key,
        input: e.value,
        output: undefined,
        status: 'info',
        call: e.time,
        ret: Number.POSITIVE_INFINITY,
      }
      open.set(e.process, op)
      out.push(op)
      continue
    }
    const op = open.get(e.process)
    if (!op) throw new TypeError(`Bad history: event ${i} completes nothing in process ${e.process}`)
    if (op.f !== e.f || op.key !== e.key)
      throw new TypeError(`Bad history: event ${i} ('${e.f}' on '${e.key}') does not match its invocation`)
    open.delete(e.process)
    op.status = e.type
    if (e.error !== undefined) op.error = e.error
    if (e.type === 'ok') {
      op.output = e.value
      op.ret = e.time
    } else if (e.type === 'fail') {
      op.ret = e.time
    }
  }
  return out
}

/** Operations grouped by key, each group in invocation order. */
export function byKey(ops: readonly Operation[]): Map<string, Operation[]> {
  const groups = new Map<string, Operation[]>()
  for (const op of ops) {
    let g = groups.get(op.key)
    if (!g) groups.set(op.key, (g = []))
    g.push(op)
  }
  return groups
}

/** Parses `history.jsonl` text. */
export function parseHistory(text: string): HistoryEvent[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as HistoryEvent
      } catch {
        throw new TypeError(`Bad history line ${i + 1}: '${line.slice(0, 80)}' is not JSON`)
      }
    })
}

/** One event as a `history.jsonl` line (with its newline). */
export function formatEvent(e: HistoryEvent): string {
  return `${JSON.stringify(e)}\n`
}
