/**
 * Byte-level reading and writing of the WebAssembly binary format: LEB128 integers, names and
 * vectors. Every read is bounds-checked, so malformed input ends in one typed error instead of a
 * silent misparse.
 */
import { ModuleInvalidError } from '../errors.js'

/** A cursor over module bytes; every read checks bounds and throws `ModuleInvalidError`. */
export class Reader {
  offset: number
  readonly end: number

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    end = bytes.length,
  ) {
    this.offset = start
    this.end = end
  }

  get done(): boolean {
    return this.offset >= this.end
  }

  fail(what: string): never {
    throw new ModuleInvalidError(`${what} at byte ${this.offset}`)
  }

  byte(): number {
    if (this.offset >= this.end) this.fail('unexpected end of module')
    return this.bytes[this.offset++]!
  }

  /** Unsigned LEB128 of at most 32 bits. */
  u32(): number {
    let result = 0
    let shift = 0
    for (let i = 0; i < 5; i++) {
      const b = this.byte()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) this.fail('u32 out of range')
        return result
      }
      shift += 7
    }
    return this.fail('u32 LEB128 too long')
  }

  /** Skips a signed LEB128 of at most `maxBytes` bytes (s32: 5, s33: 5, s64: 10). */
  skipSigned(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) {
      if ((this.byte() & 0x80) === 0) return
    }
    this.fail('signed LEB128 too long')
  }

  /** Signed LEB128 as a bigint (used for i64 constant expressions). */
  s64(): bigint {
    let result = 0n
    let shift = 0n
    for (let i = 0; i < 10; i++) {
      const b = this.byte()
      result |= BigInt(b & 0x7f) << shift
      shift += 7n
      if ((b & 0x80) === 0) {
        if (b & 0x40) result -= 1n << shift
        return BigInt.asIntN(64, result)
      }
    }
    return this.fail('s64 LEB128 too long')
  }

  /** Signed LEB128 of at most 32 bits, as a number. */
  s32(): number {
    return Number(BigInt.asIntN(32, this.s64()))
  }

  take(length: number): Uint8Array {
    if (length > this.end - this.offset) this.fail('length runs past the end')
    const out = this.bytes.subarray(this.offset, this.offset + length)
    this.offset += length
    return out
  }

  name(): string {
    const bytes = this.take(this.u32())
    try {
      return utf8.decode(bytes)
    } catch {
      return this.fail('name is not valid UTF-8')
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
const utf8Encoder = new TextEncoder()

/** Unsigned LEB128 encoding (lengths and indices). */
export function encodeU32(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`Bad u32 '${value}'`)
  const out: number[] = []
  do {
    let b = value & 0x7f
    value = Math.floor(value / 128)
    if (value !== 0) b |= 0x80
    out.push(b)
  } while (value !== 0)
  return out
}

/** Signed LEB128 encoding of a 64-bit integer. */
export function encodeS64(value: bigint): number[] {
  const out: number[] = []
  let v = BigInt.asIntN(64, value)
  for (;;) {
    const b = Number(v & 0x7fn)
    v >>= 7n
    const signBit = (b & 0x40) !== 0
    if ((v === 0n && !signBit) || (v === -1n && signBit)) {
      out.push(b)
      return out
    }
    out.push(b | 0x80)
  }
}

/** A growable byte buffer for building sections and function bodies. */
export class Writer {
  private buf = new Uint8Array(256)
  length = 0

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + extra) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
  }

  byte(b: number): this {
    this.ensure(1)
    this.buf[this.length++] = b
    return this
  }

  bytes(b: ArrayLike<number>): this {
    this.ensure(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
    return this
  }

  u32(v: number): this {
    return this.bytes(encodeU32(v))
  }

  s64(v: bigint): this {
    return this.bytes(encodeS64(v))
  }

  name(s: string): this {
    const b = utf8Encoder.encode(s)
    return this.u32(b.length).bytes(b)
  }

  /** Appends `content` prefixed by its length (sections, bodies, vectors of bytes). */
  sized(content: Uint8Array): this {
    return this.u32(content.length).bytes(content)
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length)
  }
}
