/**
 * Outgoing frames: the JSON of an event for each payload encoding, built once per broadcast and
 * shared by every socket, already framed as a WebSocket text frame (server frames are not masked,
 * so the bytes are the same for every socket).
 */
import { formatPos } from './events.js'
import type { FeedEvent } from './feed-client.js'

/** A text message and the same message framed for the wire (RFC 6455 §5.2, FIN, opcode 1). */
export interface OutFrame {
  payload: Buffer
  framed: Buffer
}

/** Frames `payload` as one unmasked text frame. */
export function outFrame(payload: Buffer): OutFrame {
  const len = payload.byteLength
  const head = len < 126 ? 2 : len < 65_536 ? 4 : 10
  const framed = Buffer.allocUnsafe(head + len)
  framed[0] = 0x81
  if (len < 126) framed[1] = len
  else if (len < 65_536) {
    framed[1] = 126
    framed.writeUInt16BE(len, 2)
  } else {
    framed[1] = 127
    framed.writeBigUInt64BE(BigInt(len), 2)
  }
  payload.copy(framed, head)
  return { payload, framed }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The bytes as text when they are UTF-8 without control characters (tab, newline and return
 * allowed); otherwise undefined, and they travel as base64 — binary data that happens to decode,
 * such as zeros, would grow sixfold as JSON escapes. A byte below 0x20 is never part of a
 * multi-byte UTF-8 sequence, so checking bytes is exact.
 */
export function utf8(bytes: Uint8Array): string | undefined {
  for (const b of bytes) if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return undefined
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

/** `{"event": text, "pos"}`, or the base64 form when the payload is not text. */
export function textEventFrame(e: FeedEvent): OutFrame {
  const text = utf8(e.data)
  if (text !== undefined) return outFrame(Buffer.from(JSON.stringify({ event: text, pos: formatPos(e.pos) })))
  return base64EventFrame(e)
}

/** `{"event": base64, "encoding": "base64", "pos"}`. */
export function base64EventFrame(e: FeedEvent): OutFrame {
  return outFrame(
    Buffer.from(
      JSON.stringify({
        event: Buffer.from(e.data).toString('base64'),
        encoding: 'base64',
        pos: formatPos(e.pos),
      }),
    ),
  )
}
