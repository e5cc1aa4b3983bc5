/**
 * The schema of a namespace database and the rules for what may be written into it: namespace
 * names, key and value limits, and the statements that apply one batch.
 */
import { crc32 } from 'node:zlib'
import type { ConfState } from '../consensus/index.js'
import { StorageLimitError } from './errors.js'
import type { StateWrite } from './state-store.js'

/** Size limits of a namespace. Every write is checked against them before it is written. */
export interface NamespaceLimits {
  /** UTF-8 bytes of a state key. */
  keyBytesMax: number
  /** UTF-8 bytes of an actor id. */
  actorIdBytesMax: number
  /** Bytes of one value. */
  valueBytesMax: number
  /** Bytes of keys plus values one actor may store. */
  actorStateBytesMax: number
  /** Entries one `list` page may return. */
  listLimitMax: number
}

/** The defaults: generous for actors, small enough that one actor's state loads quickly. */
export const defaultNamespaceLimits: NamespaceLimits = {
  keyBytesMax: 1024,
  actorIdBytesMax: 256,
  valueBytesMax: 1024 * 1024,
  actorStateBytesMax: 64 * 1024 * 1024,
  listLimitMax: 1000,
}

/**
 * A namespace name: 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter or
 * digit, optionally after one leading `_` that marks a system namespace (`_system`). The name
 * becomes a file name, so the rule leaves no room for `..`, separators or control characters.
 */
export const NAMESPACE_NAME = /^_?[a-z0-9][a-z0-9_-]{0,62}$/

/** Throws `RangeError` unless `name` follows `NAMESPACE_NAME`. */
export function validateNamespaceName(name: string): void {
  if (typeof name !== 'string' || !NAMESPACE_NAME.test(name)) {
    throw new RangeError(
      `Cannot open namespace '${String(name)}': a name is 1-63 of [a-z0-9_-], starting with a letter or digit (optionally after one '_')`,
    )
  }
}

/** Schema, created on first open. Byte totals are kept incrementally by `planWrites`. */
export const NAMESPACE_SCHEMA = [
  // A rowid table with a unique index: measured faster than WITHOUT ROWID for rows of ~100+ bytes.
  `CREATE TABLE IF NOT EXISTS kv (actor TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    crc INTEGER NOT NULL)`,
  'CREATE UNIQUE INDEX IF NOT EXISTS kv_actor_key ON kv (actor, key)',
  'CREATE TABLE IF NOT EXISTS actor_usage (actor TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID',
  `CREATE TABLE IF NOT EXISTS ns_meta (id INTEGER PRIMARY KEY CHECK (id = 1), namespace TEXT NOT NULL,
    applied_index INTEGER NOT NULL, applied_term INTEGER NOT NULL, conf TEXT NOT NULL,
    bytes INTEGER NOT NULL, crc INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS modules (namespace TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL,
    bytes BLOB NOT NULL, metadata TEXT NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (namespace, version))`,
]

/** CRC-32 of one key/value row. */
export function crcKv(actor: string, key: string, value: Uint8Array): number {
  return crc32(value, crc32(`${actor}\0${key}`))
}

/** CRC-32 of the applied point (the byte count is kept by triggers and not covered). */
export function crcMeta(namespace: string, index: number, term: number, conf: string): number {
  return crc32(`${namespace}\0${index}\0${term}\0${conf}`)
}

/** CRC-32 of a module row. */
export function crcModule(
  namespace: string,
  version: number,
  hash: string,
  bytes: Uint8Array,
  metadata: string,
) {
  return crc32(bytes, crc32(`${namespace}\0${version}\0${hash}\0${metadata}`))
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether a string has no lone surrogate, i.e. encodes to UTF-8 and back unchanged. */
function wellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s)
}

/** Checks a write against the limits; throws `StorageLimitError` naming the limit, or `TypeError`. */
export function checkWrite(w: StateWrite, limits: NamespaceLimits): void {
  if (typeof w.actor !== 'string' || w.actor.length === 0 || !wellFormed(w.actor)) {
    throw new TypeError(`Cannot write actor '${String(w.actor)}': id is empty or not well-formed UTF-16`)
  }
  if (typeof w.key !== 'string' || !wellFormed(w.key)) {
    throw new TypeError(`Cannot write key '${String(w.key)}' of actor '${w.actor}': not well-formed UTF-16`)
  }
  if (w.value !== null && !(w.value instanceof Uint8Array)) {
    throw new TypeError(`Cannot write key '${w.key}' of actor '${w.actor}': value is not bytes or null`)
  }
  const actorBytes = Buffer.byteLength(w.actor)
  if (actorBytes > limits.actorIdBytesMax) {
    throw new StorageLimitError(
      'actorIdBytesMax',
      `Cannot write actor '${w.actor.slice(0, 64)}': id is ${actorBytes} bytes, over actorIdBytesMax ${limits.actorIdBytesMax}`,
    )
  }
  const keyBytes = Buffer.byteLength(w.key)
  if (keyBytes > limits.keyBytesMax) {
    throw new StorageLimitError(
      'keyBytesMax',
      `Cannot write key '${w.key.slice(0, 64)}' of actor '${w.actor}': ${keyBytes} bytes, over keyBytesMax ${limits.keyBytesMax}`,
    )
  }
  if (w.value && w.value.byteLength > limits.valueBytesMax) {
    throw new StorageLimitError(
      'valueBytesMax',
      `Cannot write key '${w.key.slice(0, 64)}' of actor '${w.actor}': value is ${w.value.byteLength} bytes, over valueBytesMax ${limits.valueBytesMax}`,
    )
  }
}

/** A membership as stored in ns_meta (JSON text). */
export function confText(conf: ConfState): string {
  return JSON.stringify({ voters: conf.voters, learners: conf.learners })
}
