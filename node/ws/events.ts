/**
 * Commit positions of actor broadcasts and the bounded buffer of recent ones.
 *
 * A broadcast's position is `(index, n)`: the log index of the namespace entry that carried it and
 * its number within that entry (0, 1, …). Every replica applies the same entries in the same order,
 * so a position names the same broadcast on every node, and positions order an actor's broadcasts
 * in commit order. A *cursor* is a position a reader has seen up to; `(index, END)` means "all of
 * entry `index`", which is what a reader that has seen the log up to `index` holds.
 *
 * `EventLog` keeps, per actor, the most recent broadcasts (bounded count and bytes per actor, a
 * bounded number of actors — least recently used go first — and a bounded byte total). It is
 * pure: no timers, no I/O. Every replica fills one from its applied entries, which is why a new
 * leader can replay what its predecessor pushed.
 */
import { assert } from '../../consensus/index.js'

/** `n` of a cursor that covers a whole entry. */
export const END = 0xffff_ffff

/** A broadcast's commit position, or a cursor (see the file comment). */
export interface Pos {
  index: number
  n: number
}

/** The cursor before everything: a reader at it has seen nothing. */
export const ORIGIN: Pos = { index: 0, n: END }

/** Orders positions: commit order. */
export function comparePos(a: Pos, b: Pos): number {
  return a.index !== b.index ? a.index - b.index : a.n - b.n
}

/** `'17.0'` for a broadcast, `'17'` for a cursor over a whole entry. */
export function formatPos(p: Pos): string {
  return p.n === END ? String(p.index) : `${p.index}.${p.n}`
}

/** Parses `formatPos`'s text; throws `RangeError` naming the text when it is not one. */
export function parsePos(text: string): Pos {
  const m = /^(\d{1,15})(?:\.(\d{1,9}))?$/.exec(text)
  if (!m) throw new RangeError(`Bad position '${text}': expected <index> or <index>.<n>, e.g. '17.0'`)
  return { index: Number(m[1]), n: m[2] === undefined ? END : Number(m[2]) }
}

/** Whether `v` is a well-formed `Pos` (for values read off the wire). */
export function isPos(v: unknown): v is Pos {
  const p = v as Pos
  return (
    typeof p === 'object' &&
    p !== null &&
    Number.isSafeInteger(p.index) &&
    p.index >= 0 &&
    Number.isInteger(p.n) &&
    p.n >= 0 &&
    p.n <= END
  )
}

/** One buffered broadcast. */
export interface StoredEvent {
  index: number
  n: number
  data: Uint8Array
}

/** The broadcasts of one applied entry, as the namespace group reports them. */
export interface AppliedEvents {
  index: number
  events?: ReadonlyArray<{ actor: string; data: Uint8Array }>
}

export interface EventLogLimits {
  /** Broadcasts kept per actor. */
  actorEventsMax: number
  /** Bytes of broadcast data kept per actor. */
  actorBytesMax: number
  /** Actors with a buffer; beyond it the least recently used actor's buffer is dropped. */
  actorsMax: number
  /** Bytes of broadcast data kept in all; beyond it least recently used actors are dropped. */
  bytesMax: number
}

export const EVENT_LOG_DEFAULTS: EventLogLimits = {
  actorEventsMax: 1_024,
  actorBytesMax: 4 << 20,
  actorsMax: 10_000,
  bytesMax: 64 << 20,
}

/** What `replay` found: the broadcasts after a cursor, or that the buffer no longer reaches back. */
export type Replay =
  | { gone: false; events: StoredEvent[]; more: boolean }
  | { gone: true; since: Pos; events?: undefined }

interface ActorBuffer {
  ns: string
  /** Events in commit order; `events[head]` is the oldest kept. */
  events: StoredEvent[]
  head: number
  bytes: number
  /** Every broadcast of the actor after this cursor is held. */
  since: Pos
}

interface NamespaceLog {
  /** Every broadcast after this cursor is held (or was dropped and raised its actor's `since`). */
  since: Pos
  /** Cursor of the last entry appended: everything up to it has been seen. */
  tail: Pos
  /** Raised to the last broadcast of every actor whose whole buffer was dropped (LRU). */
  floor: Pos
}

/** Per-actor ring buffers of recent broadcasts with commit positions (see the file comment). */
export class EventLog {
  private readonly namespaces = new Map<string, NamespaceLog>()
  /** By `ns \0 actor`, least recently used first (a touched buffer is moved to the end). */
  private readonly actors = new Map<string, ActorBuffer>()
  private bytes = 0
  readonly limits: EventLogLimits

  constructor(limits: Partial<EventLogLimits> = {}) {
    this.limits = { ...EVENT_LOG_DEFAULTS, ...limits }
    for (const [k, v] of Object.entries(this.limits))
      if (!(Number.isInteger(v) && v > 0))
        throw new RangeError(`Bad ${k} '${v}': expected a positive integer`)
  }

  /**
   * Starts (or restarts) a namespace's log: every broadcast after log index `since` will be
   * appended. Buffers it held are dropped (a replica that installed a snapshot missed entries).
   */
  reset(ns: string, since: number): void {
    for (const [key, buf] of this.actors) if (buf.ns === ns) this.drop(key, buf)
    const at = { index: since, n: END }
    this.namespaces.set(ns, { since: at, tail: at, floor: at })
  }

  /** Forgets a namespace. */
  forget(ns: string): void {
    for (const [key, buf] of this.actors) if (buf.ns === ns) this.drop(key, buf)
    this.namespaces.delete(ns)
  }

  has(ns: string): boolean {
    return this.namespaces.has(ns)
  }

  /** The cursor of everything appended for `ns` (undefined when the namespace is not open). */
  tail(ns: string): Pos | undefined {
    return this.namespaces.get(ns)?.tail
  }

  /**
   * Appends the broadcasts of applied entries (in commit order). Entries at or before the
   * namespace's tail are ignored. Returns the actors that got broadcasts.
   */
  append(ns: string, entries: readonly AppliedEvents[]): Set<string> {
    const log = this.namespaces.get(ns)
    assert(log !== undefined, () => `EventLog.append: namespace '${ns}' is not open`)
    const touched = new Set<string>()
    for (const entry of entries) {
      if (entry.index <= log.tail.index) continue
      log.tail = { index: entry.index, n: END }
      const events = entry.events ?? []
      for (let n = 0; n < events.length; n++) {
        const { actor, data } = events[n]!
        this.push(ns, actor, { index: entry.index, n, data })
        touched.add(actor)
      }
    }
    return touched
  }

  /**
   * The broadcasts of `actor` after `after`, oldest first, at most `eventsMax` of them and about
   * `bytesMax` bytes (at least one); `more` says whether more were held. `gone` when the buffer
   * no longer holds every broadcast after `after` (with the cursor it does reach back to).
   */
  replay(ns: string, actor: string, after: Pos, eventsMax: number, bytesMax: number): Replay {
    const log = this.namespaces.get(ns)
    if (!log) return { gone: true, since: { index: Number.MAX_SAFE_INTEGER, n: END } }
    const key = keyOf(ns, actor)
    const buf = this.actors.get(key)
    const since = buf ? buf.since : maxPos(log.since, log.floor)
    if (comparePos(after, since) < 0) return { gone: true, since }
    if (!buf) return { gone: false, events: [], more: false }
    this.touch(key, buf)
    const out: StoredEvent[] = []
    let bytes = 0
    let i = this.firstAfter(buf, after)
    for (; i < buf.events.length && out.length < eventsMax; i++) {
      const e = buf.events[i]!
      if (out.length > 0 && bytes + e.data.byteLength > bytesMax) break
      out.push(e)
      bytes += e.data.byteLength
    }
    return { gone: false, events: out, more: i < buf.events.length }
  }

  /** Buffered actors and bytes (for status and tests). */
  stats(): { namespaces: number; actors: number; bytes: number } {
    return { namespaces: this.namespaces.size, actors: this.actors.size, bytes: this.bytes }
  }

  private push(ns: string, actor: string, event: StoredEvent): void {
    const key = keyOf(ns, actor)
    let buf = this.actors.get(key)
    if (!buf) {
      const log = this.namespaces.get(ns)!
      buf = { ns, events: [], head: 0, bytes: 0, since: maxPos(log.since, log.floor) }
      this.actors.set(key, buf)
    } else this.touch(key, buf)
    const last = buf.events[buf.events.length - 1]
    assert(
      last === undefined || comparePos(last, event) < 0,
      () => `EventLog: ${formatPos(event)} of '${actor}' does not follow ${formatPos(last!)}`,
    )
    buf.events.push(event)
    buf.bytes += event.data.byteLength
    this.bytes += event.data.byteLength
    while (
      buf.events.length - buf.head > this.limits.actorEventsMax ||
      buf.bytes > this.limits.actorBytesMax
    ) {
      if (buf.events.length - buf.head === 1) break // one broadcast is kept whatever its size
      this.shift(buf)
    }
    if (buf.head > 64 && buf.head * 2 > buf.events.length) {
      buf.events = buf.events.slice(buf.head)
      buf.head = 0
    }
    this.evict(key)
  }

  /** Drops least recently used buffers (never `keep`) while over `actorsMax` or `bytesMax`. */
  private evict(keep: string): void {
    for (const [key, buf] of this.actors) {
      if (this.actors.size <= this.limits.actorsMax && this.bytes <= this.limits.bytesMax) return
      if (key === keep) continue
      const log = this.namespaces.get(buf.ns)
      const last = buf.events[buf.events.length - 1]
      if (log && last) log.floor = maxPos(log.floor, last)
      this.drop(key, buf)
    }
  }

  private shift(buf: ActorBuffer): void {
    const e = buf.events[buf.head]!
    buf.events[buf.head] = undefined as unknown as StoredEvent
    buf.head++
    buf.bytes -= e.data.byteLength
    this.bytes -= e.data.byteLength
    buf.since = { index: e.index, n: e.n }
  }

  private drop(key: string, buf: ActorBuffer): void {
    this.bytes -= buf.bytes
    this.actors.delete(key)
  }

  private touch(key: string, buf: ActorBuffer): void {
    this.actors.delete(key)
    this.actors.set(key, buf)
  }

  /** Index in `buf.events` of the first event after `after` (binary search). */
  private firstAfter(buf: ActorBuffer, after: Pos): number {
    let lo = buf.head
    let hi = buf.events.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (comparePos(buf.events[mid]!, after) <= 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

function keyOf(ns: string, actor: string): string {
  return `${ns}\u0000${actor}`
}

function maxPos(a: Pos, b: Pos): Pos {
  return comparePos(a, b) >= 0 ? a : b
}
