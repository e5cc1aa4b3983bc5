/**
 * Archive encryption: AES-256-GCM over chunks of at most `CIPHER_CHUNK_BYTES` of the archive's
 * record stream (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online
 * authenticated-encryption and its nonce-reuse misuse-resistance", 2015):
 *
 *   key      = HKDF-SHA256(key file, salt = 16 random bytes of the archive, "actormesh archive v1")
 *   nonce    = 4 zero bytes ‖ chunk counter (u64, big-endian)
 *   AAD      = the archive's cleartext header ‖ flags ‖ chunk counter
 *   frame    = flags (u8, bit 0 = final) ‖ length (u32) ‖ ciphertext ‖ 16-byte tag
 *
 * A fresh salt gives every archive its own key, so counter nonces never repeat under one key. The
 * counter in the nonce and AAD authenticates the order; the final flag authenticates the end, so a
 * truncated archive (even one cut at a frame boundary) is detected; the header in the AAD binds
 * the format version and the salt. A separate 16-byte key check in the header tells a wrong key
 * from a damaged chunk.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { ArchiveCorruptError, ArchiveKeyError } from './errors.js'

/** Bytes of an archive key (AES-256). */
export const ARCHIVE_KEY_BYTES = 32
/** Bytes of plaintext one encrypted frame carries at most when writing. */
export const CIPHER_CHUNK_BYTES = 1 << 20
/** Bytes of plaintext a frame may claim when reading (refused above: no huge allocations). */
export const CIPHER_FRAME_BYTES_MAX = 16 << 20
/** Bytes of the random salt and of the key check in the header. */
export const SALT_BYTES = 16
export const KEY_CHECK_BYTES = 16
const TAG_BYTES = 16
/** flags (1) + length (4) before each frame's ciphertext. */
export const FRAME_HEAD_BYTES = 5
const FINAL = 1

/**
 * Reads a 32-byte archive key from a file: 64 hex digits, or base64 of 32 bytes (surrounding
 * whitespace ignored), or exactly 32 raw bytes. Make one with `openssl rand -hex 32 > backup.key`.
 */
export async function loadArchiveKey(path: string, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
  options?.signal?.throwIfAborted()
  let raw: Buffer
  try {
    raw = await readFile(path)
  } catch (e) {
    throw new ArchiveKeyError(`Cannot read key file '${path}': ${(e as Error).message}`)
  }
  const text = raw.toString('latin1').trim()
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'))
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return new Uint8Array(Buffer.from(text, 'base64'))
  if (raw.length === ARCHIVE_KEY_BYTES) return new Uint8Array(raw)
  throw new ArchiveKeyError(
    `Cannot use key file '${path}': it must hold 32 bytes as 64 hex digits, as base64, or raw (it holds ${raw.length} bytes)`,
  )
}

/** What the cleartext header of an encrypted archive carries. */
export interface CipherParams {
  salt: Uint8Array
  keyCheck: Uint8Array
}

interface DerivedKeys {
  aead: Buffer
  check: Buffer
}

function derive(key: Uint8Array, salt: Uint8Array): DerivedKeys {
  if (key.byteLength !== ARCHIVE_KEY_BYTES)
    throw new ArchiveKeyError(
      `Cannot use a ${key.byteLength}-byte archive key: it must be ${ARCHIVE_KEY_BYTES} bytes`,
    )
  return {
    aead: Buffer.from(hkdfSync('sha256', key, salt, 'actormesh archive v1', 32)),
    check: Buffer.from(hkdfSync('sha256', key, salt, 'actormesh archive v1 key check', KEY_CHECK_BYTES)),
  }
}

/** Fresh parameters (random salt and its key check) for a new encrypted archive. */
export function newCipherParams(key: Uint8Array): CipherParams {
  const salt = new Uint8Array(randomBytes(SALT_BYTES))
  return { salt, keyCheck: new Uint8Array(derive(key, salt).check) }
}

function nonce(counter: number): Buffer {
  const n = Buffer.alloc(12)
  n.writeBigUInt64BE(BigInt(counter), 4)
  return n
}

function aad(header: Uint8Array, flags: number, counter: number): Buffer {
  const tail = Buffer.alloc(9)
  tail[0] = flags
  tail.writeBigUInt64BE(BigInt(counter), 1)
  return Buffer.concat([header, tail])
}

/** Seals the record stream of one archive into frames, in order. */
export class ChunkSealer {
  private counter = 0
  private done = false
  private readonly key: Buffer

  constructor(
    key: Uint8Array,
    params: CipherParams,
    private readonly header: Uint8Array,
  ) {
    this.key = derive(key, params.salt).aead
  }

  /** One frame holding `plain`; `final` marks the last one (after it, nothing may be sealed). */
  seal(plain: Uint8Array, final: boolean): Buffer {
    if (this.done) throw new Error('Cannot seal a chunk after the final one')
    if (plain.byteLength > CIPHER_FRAME_BYTES_MAX)
      throw new RangeError(
        `Cannot seal a ${plain.byteLength}-byte chunk: over ${CIPHER_FRAME_BYTES_MAX} bytes`,
      )
    const flags = final ? FINAL : 0
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.counter))
    cipher.setAAD(aad(this.header, flags, this.counter))
    const head = Buffer.alloc(FRAME_HEAD_BYTES)
    head[0] = flags
    head.writeUInt32BE(plain.byteLength, 1)
    const body = Buffer.concat([head, cipher.update(plain), cipher.final(), cipher.getAuthTag()])
    this.counter++
    this.done = final
    return body
  }
}

/** Opens the frames of one archive, in order; the caller reads each frame's bytes. */
export class ChunkOpener {
  private counter = 0
  private readonly key: Buffer
  /** True once the frame marked final was opened. */
  finished = false

  constructor(
    key: Uint8Array,
    params: CipherParams,
    private readonly header: Uint8Array,
    private readonly archive: string,
  ) {
    const derived = derive(key, params.salt)
    if (!timingSafeEqual(derived.check, Buffer.from(params.keyCheck)))
      throw new ArchiveKeyError(
        `Cannot decrypt archive '${archive}': the key is not the one it was written with`,
      )
    this.key = derived.aead
  }

  /** Parses a frame head: its flags and how many ciphertext bytes (plus the tag) follow. */
  frameBytes(head: Uint8Array): { flags: number; bytes: number } {
    const flags = head[0]!
    const length = Buffer.from(head.buffer, head.byteOffset, head.byteLength).readUInt32BE(1)
    if ((flags & ~FINAL) !== 0 || length > CIPHER_FRAME_BYTES_MAX)
      throw new ArchiveCorruptError(
        `Cannot read archive '${this.archive}': encrypted chunk ${this.counter} has a malformed head`,
      )
    return { flags, bytes: length + TAG_BYTES }
  }

  /** Decrypts one frame's body (ciphertext ‖ tag); throws `ArchiveCorruptError` when it fails authentication. */
  open(flags: number, body: Uint8Array): Buffer {
    if (this.finished)
      throw new ArchiveCorruptError(`Cannot read archive '${this.archive}': data follows the final chunk`)
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce(this.counter))
    decipher.setAAD(aad(this.header, flags, this.counter))
    decipher.setAuthTag(body.subarray(body.byteLength - TAG_BYTES))
    try {
      const plain = Buffer.concat([
        decipher.update(body.subarray(0, body.byteLength - TAG_BYTES)),
        decipher.final(),
      ])
      this.counter++
      this.finished = (flags & FINAL) !== 0
      return plain
    } catch {
      throw new ArchiveCorruptError(
        `Cannot read archive '${this.archive}': encrypted chunk ${this.counter} fails authentication (damaged or reordered)`,
      )
    }
  }
}
