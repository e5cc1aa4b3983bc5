/**
 * Payload and reply bytes: what a call sends for each kind of payload, and the views of bytes a
 * reply or an event offers. Only web globals (TextEncoder, TextDecoder, atob).
 */

/** What `call()` accepts: bytes as they are (any ArrayBuffer or view), text as UTF-8, anything else as JSON. */
export type Payload = Uint8Array | ArrayBuffer | ArrayBufferView | string | number | boolean | null | object

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The body and content type of a payload; `undefined` is an empty body. */
export function encodePayload(payload: Payload | undefined): { body: Uint8Array; contentType: string } {
  if (payload === undefined) return { body: new Uint8Array(0), contentType: 'application/octet-stream' }
  const octets = 'application/octet-stream'
  if (payload instanceof Uint8Array) return { body: payload, contentType: octets }
  if (payload instanceof ArrayBuffer) return { body: new Uint8Array(payload), contentType: octets }
  if (ArrayBuffer.isView(payload))
    return {
      body: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
      contentType: octets,
    }
  if (typeof payload === 'string')
    return { body: encoder.encode(payload), contentType: 'text/plain; charset=utf-8' }
  const json = JSON.stringify(payload)
  if (json === undefined) throw new TypeError(`Cannot send payload '${String(payload)}': it has no JSON form`)
  return { body: encoder.encode(json), contentType: 'application/json' }
}

/** Bytes with text and JSON views (a reply, an event). */
export interface Bytes {
  /** The raw bytes. */
  readonly data: Uint8Array
  /** The bytes as UTF-8 text. */
  text(): string
  /** The bytes parsed as JSON; throws SyntaxError when they are not JSON. */
  json<T = unknown>(): T
}

/** A `Bytes` view of `data`. */
export function bytesView(data: Uint8Array): Bytes {
  return {
    data,
    text: () => decoder.decode(data),
    json: <T>() => JSON.parse(decoder.decode(data)) as T,
  }
}

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text)
}

/** Bytes of a base64 string (a WebSocket frame with `"encoding": "base64"`). */
export function fromBase64(text: string): Uint8Array {
  const bin = atob(text)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

/** Base64 of bytes (a call's binary payload on a WebSocket). */
export function toBase64(bytes: Uint8Array): string {
  let bin = ''
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(bin)
}
