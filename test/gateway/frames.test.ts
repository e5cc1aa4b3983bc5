import { describe, expect, it } from 'vitest'
import { FeedEvent } from '../../node/ws/feed-client.js'
import { outFrame, textEventFrame, utf8 } from '../../node/ws/frames.js'

/** Reads one unmasked frame back: FIN+opcode byte, payload length, payload. */
function unframe(framed: Buffer): { first: number; payload: Buffer } {
  let len = framed[1]!
  let at = 2
  if (len === 126) {
    len = framed.readUInt16BE(2)
    at = 4
  } else if (len === 127) {
    len = Number(framed.readBigUInt64BE(2))
    at = 10
  }
  expect(framed.byteLength).toBe(at + len)
  return { first: framed[0]!, payload: framed.subarray(at) }
}

describe('outgoing frames', () => {
  it('frame a payload as one final unmasked text frame at every length form', () => {
    for (const len of [0, 1, 125, 126, 127, 65_535, 65_536, 200_000]) {
      const payload = Buffer.alloc(len, 0x61)
      const { first, payload: back } = unframe(outFrame(payload).framed)
      expect(first, `length ${len}`).toBe(0x81)
      expect(back.equals(payload), `length ${len}`).toBe(true)
    }
  })

  it('send UTF-8 without control characters as text and anything else as base64', () => {
    expect(utf8(new TextEncoder().encode('héllo\tworld\n'))).toBe('héllo\tworld\n')
    expect(utf8(new Uint8Array([0xc3]))).toBeUndefined()
    expect(utf8(new Uint8Array([0x68, 0x00]))).toBeUndefined()
    const json = (data: Uint8Array) =>
      JSON.parse(textEventFrame(new FeedEvent({ index: 7, n: 1 }, data)).payload.toString()) as unknown
    expect(json(new TextEncoder().encode('hi'))).toEqual({ event: 'hi', pos: '7.1' })
    expect(json(new Uint8Array([0, 1]))).toEqual({ event: 'AAE=', encoding: 'base64', pos: '7.1' })
  })
})
