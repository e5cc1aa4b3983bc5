// ActorMesh SDK for AssemblyScript (ABI v1, see docs/abi.md).
//
// An actor file registers its methods with `on(name, handler)` at top level (that code runs once,
// when the instance starts) and re-exports the ABI entry points:
//
//   export { abi_version, alloc, handle } from '<path>/actors/sdk/assembly/index'
//
// The host resets the instance to its post-start state before every call, so module-level
// variables do NOT carry over between calls: keep everything durable in state.

// ---- host imports (module "actormesh"); only the ones an actor uses end up in its binary ----

@external("actormesh", "state_get") declare function host_state_get(kp: usize, kl: i32, dp: usize, dc: i32): i32
@external("actormesh", "state_set") declare function host_state_set(kp: usize, kl: i32, vp: usize, vl: i32): void
@external("actormesh", "state_delete") declare function host_state_delete(kp: usize, kl: i32): void
@external("actormesh", "state_list") declare function host_state_list(pp: usize, pl: i32, dp: usize, dc: i32): i32
@external("actormesh", "broadcast") declare function host_broadcast(p: usize, l: i32): void
@external("actormesh", "log") declare function host_log(level: i32, p: usize, l: i32): void
@external("actormesh", "now") declare function host_now(): f64
@external("actormesh", "random") declare function host_random(p: usize, l: i32): void
@external("actormesh", "alarm_set") declare function host_alarm_set(atMs: f64): void
@external("actormesh", "alarm_cancel") declare function host_alarm_cancel(): void
@external("actormesh", "panic") declare function host_panic(kind: i32, p: usize, l: i32): void

// ---- ABI entry points ----

/** ABI version this SDK implements; the host refuses modules with another one. */
export const abi_version: i32 = 1

/** A method handler: payload bytes in, reply bytes out. */
export type Handler = (payload: Uint8Array) => Uint8Array

const handlers = new Map<string, Handler>()

/** Registers `handler` for `method` (call at top level of the actor file). */
export function on(method: string, handler: Handler): void {
  handlers.set(method, handler)
}

const readonly = new Array<string>()

/**
 * Registers a method that never writes state, broadcasts or sets alarms (the host enforces it),
 * so the node may serve it from any replica. Re-export `readonly_methods` to publish the list.
 */
export function onReadonly(method: string, handler: Handler): void {
  handlers.set(method, handler)
  readonly.push(method)
}

/** Host (optional export): `[u32 length]["name\nname..."]`, the read-only methods. */
export function readonly_methods(): usize {
  const b = String.UTF8.encode(readonly.join('\n'))
  const out = heap.alloc(4 + <usize>b.byteLength)
  store<u32>(out, <u32>b.byteLength)
  memory.copy(out + 4, changetype<usize>(b), <usize>b.byteLength)
  return out
}

/** Host: reserve `len` bytes for the method name and payload of the next call. */
export function alloc(len: i32): usize {
  return heap.alloc(<usize>len)
}

/** Host: run one call. Returns a pointer to `[u32 length][reply bytes]`. */
export function handle(methodPtr: usize, methodLen: i32, payloadPtr: usize, payloadLen: i32): usize {
  const method = String.UTF8.decodeUnsafe(methodPtr, <usize>methodLen)
  const payload = new Uint8Array(payloadLen)
  memory.copy(payload.dataStart, payloadPtr, <usize>payloadLen)
  if (!handlers.has(method)) {
    panicWith(1, method)
  }
  const reply = handlers.get(method)(payload)
  const out = heap.alloc(4 + <usize>reply.length)
  store<u32>(out, <u32>reply.length)
  memory.copy(out + 4, reply.dataStart, <usize>reply.length)
  return out
}

function panicWith(kind: i32, message: string): void {
  const b = String.UTF8.encode(message)
  host_panic(kind, changetype<usize>(b), b.byteLength)
  unreachable()
}

/** Routed here by the build (`--use abort=...`): reports the message, then traps. */
export function amAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let text = message !== null ? message : 'abort'
  if (fileName !== null) text += ' at ' + fileName + ':' + line.toString() + ':' + column.toString()
  panicWith(0, text)
}

/** Fails the call on purpose: its writes are dropped and the caller gets `ActorFailedError`. */
export function fail(message: string): void {
  panicWith(2, message)
}

// ---- bytes and text ----

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s))
}

/** A string from UTF-8 bytes. */
export function str(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, <usize>b.length)
}

// ---- state (per actor; reads see this call's own writes) ----

/** The bytes stored under `key`, or null. */
export function getBytes(key: string): Uint8Array | null {
  const k = String.UTF8.encode(key)
  let buf = new Uint8Array(64)
  let n = host_state_get(changetype<usize>(k), k.byteLength, buf.dataStart, buf.length)
  if (n < 0) return null
  if (n > buf.length) {
    buf = new Uint8Array(n)
    n = host_state_get(changetype<usize>(k), k.byteLength, buf.dataStart, buf.length)
  }
  return buf.slice(0, n)
}

/** Stores bytes under `key`. */
export function setBytes(key: string, value: Uint8Array): void {
  const k = String.UTF8.encode(key)
  host_state_set(changetype<usize>(k), k.byteLength, value.dataStart, value.length)
}

/** Deletes `key`. */
export function del(key: string): void {
  const k = String.UTF8.encode(key)
  host_state_delete(changetype<usize>(k), k.byteLength)
}

/** The string stored under `key` (UTF-8), or null. */
export function getString(key: string): string | null {
  const b = getBytes(key)
  return b === null ? null : str(b)
}

export function setString(key: string, value: string): void {
  setBytes(key, utf8(value))
}

/** An i64 stored as 8 little-endian bytes, or `fallback`. */
export function getI64(key: string, fallback: i64 = 0): i64 {
  const b = getBytes(key)
  return b === null || b.length != 8 ? fallback : load<i64>(b.dataStart)
}

export function setI64(key: string, value: i64): void {
  const b = new Uint8Array(8)
  store<i64>(b.dataStart, value)
  setBytes(key, b)
}

/** An f64 stored as 8 little-endian bytes, or `fallback`. */
export function getF64(key: string, fallback: f64 = 0): f64 {
  const b = getBytes(key)
  return b === null || b.length != 8 ? fallback : load<f64>(b.dataStart)
}

export function setF64(key: string, value: f64): void {
  const b = new Uint8Array(8)
  store<f64>(b.dataStart, value)
  setBytes(key, b)
}

/** One key and value from `list`. */
export class Entry {
  constructor(public key: string, public value: Uint8Array) {}
}

/** Every entry whose key starts with `prefix`, in key order. */
export function list(prefix: string): Entry[] {
  const p = String.UTF8.encode(prefix)
  let buf = new Uint8Array(1024)
  let n = host_state_list(changetype<usize>(p), p.byteLength, buf.dataStart, buf.length)
  if (n > buf.length) {
    buf = new Uint8Array(n)
    n = host_state_list(changetype<usize>(p), p.byteLength, buf.dataStart, buf.length)
  }
  const out = new Array<Entry>()
  let at = 0
  while (at < n) {
    const kl = <i32>load<u32>(buf.dataStart + <usize>at)
    const key = String.UTF8.decodeUnsafe(buf.dataStart + <usize>at + 4, <usize>kl)
    at += 4 + kl
    const vl = <i32>load<u32>(buf.dataStart + <usize>at)
    const value = buf.slice(at + 4, at + 4 + vl)
    at += 4 + vl
    out.push(new Entry(key, value))
  }
  return out
}

// ---- effects ----

/** Sends bytes to the actor's subscribers (released after the call's writes commit). */
export function broadcast(b: Uint8Array): void {
  host_broadcast(b.dataStart, b.length)
}

export function broadcastString(s: string): void {
  broadcast(utf8(s))
}

/** Logs a message (level 0 debug, 1 info, 2 warn, 3 error). */
export function log(message: string, level: i32 = 1): void {
  const b = String.UTF8.encode(message)
  host_log(level, changetype<usize>(b), b.byteLength)
}

/** The call's timestamp in milliseconds since the epoch (the same for the whole call). */
export function now(): f64 {
  return host_now()
}

/** `n` random bytes from the call's seeded source (replays give the same bytes). */
export function randomBytes(n: i32): Uint8Array {
  const b = new Uint8Array(n)
  host_random(b.dataStart, n)
  return b
}

export function randomU32(): u32 {
  const b = randomBytes(4)
  return load<u32>(b.dataStart)
}

/** Asks the host to call this actor's `alarm` method at `atMs` (one alarm per actor). */
export function setAlarm(atMs: f64): void {
  host_alarm_set(atMs)
}

export function cancelAlarm(): void {
  host_alarm_cancel()
}

// ---- JSON ----

/** `s` as a JSON string literal. */
export function jsonQuote(s: string): string {
  let out = '"'
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c == 0x22) out += '\\"'
    else if (c == 0x5c) out += '\\\\'
    else if (c == 0x0a) out += '\\n'
    else if (c == 0x0d) out += '\\r'
    else if (c == 0x09) out += '\\t'
    else if (c < 0x20) out += '\\u00' + (c < 0x10 ? '0' : '') + c.toString(16)
    else out += String.fromCharCode(c)
  }
  return out + '"'
}

/** Builds a flat JSON object: `new JsonObject().str('a', 'x').num('b', 1).toString()`. */
export class JsonObject {
  private parts: string[] = []
  str(key: string, value: string): JsonObject {
    this.parts.push(jsonQuote(key) + ':' + jsonQuote(value))
    return this
  }
  num(key: string, value: f64): JsonObject {
    this.parts.push(jsonQuote(key) + ':' + (isFinite(value) ? (value == Math.floor(value) && Math.abs(value) < 1e15 ? (<i64>value).toString() : value.toString()) : 'null'))
    return this
  }
  bool(key: string, value: bool): JsonObject {
    this.parts.push(jsonQuote(key) + ':' + (value ? 'true' : 'false'))
    return this
  }
  /** A raw JSON value (already encoded). */
  raw(key: string, json: string): JsonObject {
    this.parts.push(jsonQuote(key) + ':' + json)
    return this
  }
  toString(): string {
    return '{' + this.parts.join(',') + '}'
  }
}

function skipSpace(s: string, i: i32): i32 {
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break
    i++
  }
  return i
}

// Index just past the JSON string starting at i (s[i] == '"').
function skipString(s: string, i: i32): i32 {
  i++
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c == 0x5c) i += 2
    else if (c == 0x22) return i + 1
    else i++
  }
  return i
}

// Index just past the JSON value starting at i.
function skipValue(s: string, i: i32): i32 {
  if (i >= s.length) return i
  const c = s.charCodeAt(i)
  if (c == 0x22) return skipString(s, i)
  if (c == 0x7b || c == 0x5b) {
    let depth = 0
    while (i < s.length) {
      const d = s.charCodeAt(i)
      if (d == 0x22) {
        i = skipString(s, i)
        continue
      }
      if (d == 0x7b || d == 0x5b) depth++
      else if (d == 0x7d || d == 0x5d) {
        depth--
        if (depth == 0) return i + 1
      }
      i++
    }
    return i
  }
  while (i < s.length) {
    const d = s.charCodeAt(i)
    if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x0a || d == 0x0d || d == 0x09) break
    i++
  }
  return i
}

function unquote(raw: string): string {
  let out = ''
  for (let i = 1; i < raw.length - 1; i++) {
    const c = raw.charCodeAt(i)
    if (c != 0x5c) {
      out += String.fromCharCode(c)
      continue
    }
    i++
    const e = raw.charCodeAt(i)
    if (e == 0x6e) out += '\n'
    else if (e == 0x72) out += '\r'
    else if (e == 0x74) out += '\t'
    else if (e == 0x75) {
      out += String.fromCharCode(<i32>I32.parseInt(raw.substring(i + 1, i + 5), 16))
      i += 4
    } else out += String.fromCharCode(e)
  }
  return out
}

/** The raw JSON text of `field` in a top-level JSON object, or null when absent. */
export function jsonField(json: string, field: string): string | null {
  let i = skipSpace(json, 0)
  if (i >= json.length || json.charCodeAt(i) != 0x7b) return null
  i++
  while (i < json.length) {
    i = skipSpace(json, i)
    if (json.charCodeAt(i) != 0x22) return null
    const keyEnd = skipString(json, i)
    const key = unquote(json.substring(i, keyEnd))
    i = skipSpace(json, keyEnd)
    if (json.charCodeAt(i) != 0x3a) return null
    i = skipSpace(json, i + 1)
    const end = skipValue(json, i)
    if (key == field) return json.substring(i, end)
    i = skipSpace(json, end)
    if (json.charCodeAt(i) != 0x2c) return null
    i++
  }
  return null
}

/** A string field of a JSON object, or null when absent or not a string. */
export function jsonString(json: string, field: string): string | null {
  const raw = jsonField(json, field)
  if (raw === null || raw.length < 2 || raw.charCodeAt(0) != 0x22) return null
  return unquote(raw)
}

/** A number field of a JSON object, or NaN when absent or not a number. */
export function jsonNumber(json: string, field: string): f64 {
  const raw = jsonField(json, field)
  if (raw === null || raw.length == 0) return NaN
  return parseFloat(raw)
}
