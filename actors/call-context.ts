/**
 * One call's view of its actor: the per-call overlay over the resident state (read-your-writes),
 * the quota, broadcasts, the seeded random source, and the record of every value a state read
 * returned (for replay). Host imports delegate here; nothing in this file touches WebAssembly.
 */
import type { ActorLimits } from './config.js'
import { alarmKey } from './config.js'
import { InvalidKeyError, ReadonlyViolationError, SizeLimitError, StateQuotaError } from './errors.js'

/** The state a call runs against: the actor's resident state (committed plus pending writes). */
export interface BaseState {
  get(key: string): Uint8Array | undefined
  entries(): Iterable<[string, Uint8Array]>
  /** Bytes of keys plus values. */
  bytes: number
  /** Told of every listed prefix (replay uses it to spot reads its record lacks). */
  noteList?(prefix: string): void
}

/** Keys and values the call read from the base state, for replay. */
export interface RecordedReads {
  gets: Array<[key: string, value: Uint8Array | null]>
  lists: Array<[prefix: string, entries: Array<[string, Uint8Array]>]>
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Bytes a string occupies in UTF-8 (the quota's unit), without encoding it (hot path). */
export function keyBytes(key: string): number {
  let n = key.length
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) n += 1
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < key.length) {
      const d = key.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2 // a surrogate pair: 2 UTF-16 units, 4 UTF-8 bytes
        i++
      } else n += 2
    } else n += 2
  }
  return n
}

/** A deterministic 32-bit generator (mulberry32) seeded per call, so replay gets the same bytes. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

/** The mutable state of one call while it runs. */
export class CallContext {
  readonly overlay = new Map<string, Uint8Array | null>()
  readonly broadcasts: Uint8Array[] = []
  readonly reads: RecordedReads = { gets: [], lists: [] }
  private readonly readKeys = new Set<string>()
  /** Set for methods the module declares read-only: any write or broadcast fails the call. */
  readonly = false
  private broadcastBytes = 0
  private deltaBytes = 0
  private readonly next: () => number

  constructor(
    readonly base: BaseState,
    readonly limits: ActorLimits,
    readonly now: number,
    seed: number,
  ) {
    this.next = seededRandom(seed)
  }

  /** Decodes a user key: well-formed UTF-8, within `keyBytesMax`, not in the reserved space. */
  decodeKey(bytes: Uint8Array, what = 'key'): string {
    if (bytes.length > this.limits.keyBytesMax) {
      throw new InvalidKeyError(
        `Cannot use ${what} of ${bytes.length} bytes: over keyBytesMax '${this.limits.keyBytesMax}'`,
      )
    }
    let key: string
    try {
      key = utf8.decode(bytes)
    } catch {
      throw new InvalidKeyError(`Cannot use ${what}: bytes are not well-formed UTF-8`)
    }
    if (key.startsWith('\u0000'))
      throw new InvalidKeyError(`Cannot use ${what} '${JSON.stringify(key)}': reserved`)
    return key
  }

  get(key: string): Uint8Array | undefined {
    const own = this.overlay.get(key)
    if (own !== undefined) return own ?? undefined
    return this.baseGet(key)
  }

  /** Every read of the base state goes through here, so replay holds each value consulted. */
  private baseGet(key: string): Uint8Array | undefined {
    const value = this.base.get(key)
    if (!this.readKeys.has(key)) {
      this.readKeys.add(key)
      this.reads.gets.push([key, value ?? null])
    }
    return value
  }

  /** Entries with `prefix` in key order, overlay applied. */
  list(prefix: string): Array<[string, Uint8Array]> {
    const merged = new Map<string, Uint8Array>()
    const fromBase: Array<[string, Uint8Array]> = []
    for (const [k, v] of this.base.entries()) {
      if (k.startsWith(prefix) && !k.startsWith('\u0000')) {
        fromBase.push([k, v])
        merged.set(k, v)
      }
    }
    this.base.noteList?.(prefix)
    this.reads.lists.push([prefix, fromBase])
    for (const [k, v] of this.overlay) {
      if (!k.startsWith(prefix) || k.startsWith('\u0000')) continue
      if (v === null) merged.delete(k)
      else merged.set(k, v)
    }
    return [...merged].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  private sizeOf(key: string): number {
    const own = this.overlay.get(key)
    const value = own === undefined ? this.baseGet(key) : own
    return value ? keyBytes(key) + value.length : 0
  }

  /** Sets or deletes (`null`) a key, enforcing `actorStateBytesMax` on the projected state. */
  put(key: string, value: Uint8Array | null): void {
    if (this.readonly) throw new ReadonlyViolationError(`Cannot write key '${key}' in a read-only method`)
    const after = value ? keyBytes(key) + value.length : 0
    const delta = after - this.sizeOf(key)
    const projected = this.base.bytes + this.deltaBytes + delta
    if (delta > 0 && projected > this.limits.actorStateBytesMax) {
      throw new StateQuotaError(
        `Cannot set key '${key}': state would be ${projected} bytes, over actorStateBytesMax '${this.limits.actorStateBytesMax}'`,
      )
    }
    this.deltaBytes += delta
    this.overlay.set(key, value)
  }

  broadcast(bytes: Uint8Array): void {
    if (this.readonly) throw new ReadonlyViolationError('Cannot broadcast from a read-only method')
    this.broadcastBytes += bytes.length
    if (this.broadcastBytes > this.limits.broadcastBytesMax) {
      throw new SizeLimitError(
        `Cannot broadcast: ${this.broadcastBytes} bytes in this call, over broadcastBytesMax '${this.limits.broadcastBytesMax}'`,
        'broadcastBytesMax',
      )
    }
    this.broadcasts.push(bytes.slice())
  }

  fillRandom(out: Uint8Array): void {
    for (let i = 0; i < out.length; i += 4) {
      const v = this.next()
      for (let j = 0; j < 4 && i + j < out.length; j++) out[i + j] = (v >>> (8 * j)) & 0xff
    }
  }

  setAlarm(atMs: number): void {
    const value = new Uint8Array(8)
    new DataView(value.buffer).setFloat64(0, atMs, true)
    this.put(alarmKey, value)
  }

  cancelAlarm(): void {
    this.put(alarmKey, null)
  }

  /** The write set in key order; deletes of keys the base state lacks are dropped. */
  writes(): Array<[string, Uint8Array | null]> {
    const out: Array<[string, Uint8Array | null]> = []
    for (const [k, v] of this.overlay) {
      if (v === null && this.baseGet(k) === undefined) continue
      out.push([k, v])
    }
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }
}

/** Decodes an alarm value written by `setAlarm`. */
export function decodeAlarm(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getFloat64(0, true)
}
