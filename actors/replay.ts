/**
 * Replay records: everything a call depended on (method, payload, timestamp, seed, module hash,
 * and every value its state reads returned), kept in a bounded per-actor ring. Re-running a
 * record against the recorded reads gives the same outcome with the same module, and a list of
 * differences with another one.
 */
import type { BaseState, RecordedReads } from './call-context.js'

/** How a recorded call ended. */
export type CallOutcome =
  | {
      ok: true
      reply: Uint8Array
      writes: Array<[key: string, value: Uint8Array | null]>
      broadcasts: Uint8Array[]
      fuelUsed: number
    }
  | { ok: false; code: string; message: string }

/** One recorded call, exportable (plain data, Uint8Arrays for bytes). */
export interface CallRecord {
  namespace: string
  actor: string
  method: string
  payload: Uint8Array
  now: number
  seed: number
  moduleHash: string
  /** Bytes of the actor's state when the call began (the quota check depends on it). */
  stateBytes: number
  reads: RecordedReads
  outcome: CallOutcome
}

/** What a replay produced and how it differs from the record. */
export interface ReplayResult {
  moduleHash: string
  outcome: CallOutcome
  /** Human-readable differences; empty when the replay matches the record exactly. */
  differences: string[]
  /** Keys or prefixes the replayed call read that the record does not hold (read as absent). */
  unrecordedReads: string[]
}

/** Approximate bytes a record holds (counted against `residentBytesMax`). */
export function recordBytes(record: CallRecord): number {
  let n = 200 + record.method.length + record.payload.length
  for (const [k, v] of record.reads.gets) n += k.length + (v?.length ?? 0)
  for (const [p, entries] of record.reads.lists) {
    n += p.length
    for (const [k, v] of entries) n += k.length + v.length
  }
  if (record.outcome.ok) {
    n += record.outcome.reply.length
    for (const [k, v] of record.outcome.writes) n += k.length + (v?.length ?? 0)
    for (const b of record.outcome.broadcasts) n += b.length
  } else n += record.outcome.message.length
  return n
}

/** The base state of a replay: exactly the values the recorded call read. */
export class RecordedState implements BaseState {
  private readonly values = new Map<string, Uint8Array>()
  private readonly knownKeys = new Set<string>()
  private readonly knownPrefixes = new Set<string>()
  readonly unrecorded = new Set<string>()
  bytes = 0

  constructor(reads: RecordedReads, baseBytes: number) {
    for (const [k, v] of reads.gets) {
      this.knownKeys.add(k)
      if (v) this.values.set(k, v)
    }
    for (const [p, entries] of reads.lists) {
      this.knownPrefixes.add(p)
      for (const [k, v] of entries) this.values.set(k, v)
    }
    this.bytes = baseBytes
  }

  get(key: string): Uint8Array | undefined {
    if (!this.knownKeys.has(key) && ![...this.knownPrefixes].some((p) => key.startsWith(p))) {
      this.unrecorded.add(key)
    }
    return this.values.get(key)
  }

  entries(): Iterable<[string, Uint8Array]> {
    return this.values.entries()
  }

  noteList(prefix: string): void {
    if (!this.knownPrefixes.has(prefix)) this.unrecorded.add(`${prefix}*`)
  }
}

const hex = (b: Uint8Array | null) => (b === null ? 'deleted' : `0x${Buffer.from(b).toString('hex')}`)

function equalBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** Lists how `actual` differs from `expected`, one line per difference. */
export function diffOutcomes(expected: CallOutcome, actual: CallOutcome): string[] {
  if (!expected.ok || !actual.ok) {
    if (!expected.ok && !actual.ok && expected.code === actual.code) return []
    const show = (o: CallOutcome) => (o.ok ? 'success' : `error ${o.code}`)
    return [`outcome: recorded ${show(expected)}, replayed ${show(actual)}`]
  }
  const out: string[] = []
  if (!equalBytes(expected.reply, actual.reply)) {
    out.push(`reply: recorded ${hex(expected.reply)}, replayed ${hex(actual.reply)}`)
  }
  const before = new Map(expected.writes)
  const after = new Map(actual.writes)
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const a = before.has(key) ? before.get(key)! : undefined
    const b = after.has(key) ? after.get(key)! : undefined
    if (a === undefined || b === undefined || !equalBytes(a, b)) {
      const show = (v: Uint8Array | null | undefined) => (v === undefined ? 'not written' : hex(v))
      out.push(`write '${key}': recorded ${show(a)}, replayed ${show(b)}`)
    }
  }
  const ba = expected.broadcasts
  const bb = actual.broadcasts
  if (ba.length !== bb.length || ba.some((x, i) => !equalBytes(x, bb[i]!))) {
    out.push(`broadcasts: recorded ${ba.length}, replayed ${bb.length} (or contents differ)`)
  }
  if (expected.fuelUsed !== actual.fuelUsed) {
    out.push(`fuel: recorded ${expected.fuelUsed}, replayed ${actual.fuelUsed}`)
  }
  return out
}
