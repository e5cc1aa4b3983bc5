/**
 * The snapshot archive container, format version 1 (docs/backup.md). Written and read as a stream:
 * no part is ever whole in memory.
 *
 *   header   magic "\x89AMSNAP\n" ‖ version (u16) ‖ flags (u8, bit 0 = encrypted) ‖ 0 (u8)
 *            [‖ salt (16) ‖ key check (16) when encrypted]
 *   records  type (u8) ‖ length (u32) ‖ payload, in this order:
 *            PART (JSON part header), DATA… (the part's bytes), … MANIFEST (JSON), END (SHA-256)
 *
 * END holds the SHA-256 of every byte before it except DATA payloads (header, every record head,
 * PART and MANIFEST payloads), and each part carries the SHA-256 of its bytes (in its PART record,
 * which END covers): a flipped bit anywhere is found, and the bulk is hashed once. Encrypted, the
 * record stream is sealed in AES-256-GCM frames (node/backup/crypto.ts) after the cleartext header.
 * A file that ends before END (or, encrypted, before the final frame) is truncated.
 */
import { createHash, type Hash, randomBytes } from 'node:crypto'
import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises'
import {
  ChunkOpener,
  ChunkSealer,
  CIPHER_CHUNK_BYTES,
  type CipherParams,
  FRAME_HEAD_BYTES,
  KEY_CHECK_BYTES,
  newCipherParams,
  SALT_BYTES,
} from './crypto.js'
import { ArchiveCorruptError, ArchiveKeyError, ArchiveVersionError } from './errors.js'
import {
  ARCHIVE_FORMAT_VERSION,
  type ArchiveManifest,
  type ArchivePart,
  checkManifest,
  checkPart,
} from './manifest.js'

/** The first eight bytes of every archive (a high byte and a newline catch text-mode transfers). */
export const ARCHIVE_MAGIC = Buffer.from([0x89, 0x41, 0x4d, 0x53, 0x4e, 0x41, 0x50, 0x0a])
/** Bytes of a DATA record's payload when writing. */
export const DATA_RECORD_BYTES = 1 << 20
/** Bytes a record's payload may claim when reading (larger is refused as damage). */
export const ARCHIVE_RECORD_BYTES_MAX = 16 << 20
/** Bytes read from the file at a time. */
const READ_BLOCK_BYTES = 1 << 20

const RecordType = { Part: 1, Data: 2, Manifest: 3, End: 4 } as const
const PLAIN_HEADER_BYTES = 12
const ENCRYPTED = 1

/** What the cleartext header says. */
export interface ArchiveHeader {
  version: number
  encrypted: boolean
  cipher?: CipherParams
  /** The header's bytes (bound into every encrypted frame). */
  bytes: Buffer
}

function encodeHeader(cipher: CipherParams | undefined): Buffer {
  const head = Buffer.alloc(PLAIN_HEADER_BYTES)
  ARCHIVE_MAGIC.copy(head, 0)
  head.writeUInt16BE(ARCHIVE_FORMAT_VERSION, 8)
  head[10] = cipher ? ENCRYPTED : 0
  return cipher ? Buffer.concat([head, cipher.salt, cipher.keyCheck]) : head
}

function recordHead(type: number, length: number): Buffer {
  const head = Buffer.alloc(5)
  head[0] = type
  head.writeUInt32BE(length, 1)
  return head
}

/** Progress of writing or reading an archive. */
export interface ArchiveProgress {
  /** Bytes of the current part done, and its size. */
  bytes: number
  total: number
  part: string
}

// ---- writing -----------------------------------------------------------------------------------

/**
 * Writes an archive into a temp file beside `path` and renames it into place on `finish`, so a
 * failed snapshot never leaves a partial archive under the final name. Parts are checked against
 * their headers (size and SHA-256) while they stream.
 */
export class ArchiveWriter {
  private readonly whole = createHash('sha256')
  private pending: Buffer[] = []
  private pendingBytes = 0
  private written = 0
  private closed = false

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private readonly fh: FileHandle,
    private readonly sealer: ChunkSealer | undefined,
  ) {}

  /** Starts an archive at `path` (refused if it exists); with `key`, it is encrypted. */
  static async create(
    path: string,
    options: { key?: Uint8Array; signal?: AbortSignal } = {},
  ): Promise<ArchiveWriter> {
    options.signal?.throwIfAborted()
    if (await exists(path)) throw new RangeError(`Cannot write archive '${path}': the file exists`)
    const cipher = options.key ? newCipherParams(options.key) : undefined
    const header = encodeHeader(cipher)
    const tmp = `${path}.partial-${randomBytes(6).toString('hex')}`
    const fh = await open(tmp, 'wx')
    const writer = new ArchiveWriter(
      path,
      tmp,
      fh,
      cipher ? new ChunkSealer(options.key!, cipher, header) : undefined,
    )
    await writer.raw(header)
    writer.whole.update(header)
    return writer
  }

  /** Bytes written to the file so far. */
  get bytesWritten(): number {
    return this.written
  }

  /**
   * Streams one part. Its bytes must add up to `part.bytes` and hash to `part.sha256`, or this
   * throws (call `abort`).
   */
  async addPart(
    part: ArchivePart,
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: { signal?: AbortSignal; onProgress?: (p: ArchiveProgress) => void } = {},
  ): Promise<void> {
    checkPart(this.path, part)
    await this.record(RecordType.Part, Buffer.from(JSON.stringify(part)))
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of chunks) {
      options.signal?.throwIfAborted()
      for (let at = 0; at < chunk.byteLength; at += DATA_RECORD_BYTES) {
        const piece = chunk.subarray(at, at + DATA_RECORD_BYTES)
        bytes += piece.byteLength
        if (bytes > part.bytes)
          throw new RangeError(
            `Cannot archive '${part.name}': more than the ${part.bytes} bytes its header says`,
          )
        hash.update(piece)
        await this.record(RecordType.Data, piece)
      }
      options.onProgress?.({ bytes, total: part.bytes, part: part.name })
    }
    const sha256 = hash.digest('hex')
    if (bytes !== part.bytes || sha256 !== part.sha256)
      throw new RangeError(
        `Cannot archive '${part.name}': got ${bytes} bytes with SHA-256 ${sha256}, its header says ${part.bytes} with ${part.sha256}`,
      )
  }

  /** Writes the manifest and END, syncs, and renames the archive into place. */
  async finish(manifest: ArchiveManifest): Promise<{ bytes: number }> {
    await this.record(RecordType.Manifest, Buffer.from(JSON.stringify(manifest)))
    const digest = this.whole.copy().digest()
    await this.record(RecordType.End, digest)
    await this.flush(true)
    await this.fh.sync()
    await this.fh.close()
    this.closed = true
    if (await exists(this.path)) {
      await rm(this.tmp, { force: true })
      throw new RangeError(`Cannot write archive '${this.path}': the file appeared while writing`)
    }
    await rename(this.tmp, this.path)
    return { bytes: this.written }
  }

  /** Drops the temp file (after a failure). */
  async abort(): Promise<void> {
    if (!this.closed) await this.fh.close().catch(() => {})
    this.closed = true
    await rm(this.tmp, { force: true })
  }

  private async record(type: number, payload: Uint8Array): Promise<void> {
    const head = recordHead(type, payload.byteLength)
    if (type !== RecordType.End) {
      this.whole.update(head)
      // DATA is covered by its part's SHA-256, which END covers through the PART record.
      if (type !== RecordType.Data) this.whole.update(payload)
    }
    this.pending.push(head, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength))
    this.pendingBytes += head.byteLength + payload.byteLength
    if (this.pendingBytes >= CIPHER_CHUNK_BYTES) await this.flush(false)
  }

  private async flush(final: boolean): Promise<void> {
    if (this.sealer) {
      const plain = Buffer.concat(this.pending, this.pendingBytes)
      let at = 0
      do {
        const piece = plain.subarray(at, at + CIPHER_CHUNK_BYTES)
        at += piece.byteLength
        await this.raw(this.sealer.seal(piece, final && at >= plain.byteLength))
      } while (at < plain.byteLength)
    } else if (this.pendingBytes > 0) {
      await this.fh.writev(this.pending)
      this.written += this.pendingBytes
    }
    this.pending = []
    this.pendingBytes = 0
  }

  private async raw(bytes: Buffer): Promise<void> {
    await this.fh.write(bytes)
    this.written += bytes.byteLength
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

// ---- reading -----------------------------------------------------------------------------------

/** Reads a file in blocks and hands out exact byte counts. */
class BlockReader {
  private buf = Buffer.alloc(0)
  private off = 0
  private pos = 0

  constructor(
    private readonly fh: FileHandle,
    private readonly archive: string,
    private readonly onBytes: (fileBytes: number) => void,
  ) {}

  /** Exactly `n` bytes, or `ArchiveCorruptError` (truncated) at the end of the file. */
  async exact(n: number): Promise<Buffer> {
    while (this.buf.byteLength - this.off < n) {
      if ((await this.fill(n)) === 0)
        throw new ArchiveCorruptError(
          `Cannot read archive '${this.archive}': it is truncated (ends at byte ${this.pos})`,
        )
    }
    const out = this.buf.subarray(this.off, this.off + n)
    this.off += n
    return out
  }

  /** What is left before the end of the file, up to `n` bytes (for the header). */
  async upTo(n: number): Promise<Buffer> {
    while (this.buf.byteLength - this.off < n && (await this.fill(n)) > 0) {}
    const out = this.buf.subarray(this.off, Math.min(this.buf.byteLength, this.off + n))
    this.off += out.byteLength
    return out
  }

  async atEnd(): Promise<boolean> {
    return this.off === this.buf.byteLength && (await this.fill(1)) === 0
  }

  private async fill(want: number): Promise<number> {
    const block = Buffer.allocUnsafe(Math.max(READ_BLOCK_BYTES, want))
    const { bytesRead } = await this.fh.read(block, 0, block.byteLength, this.pos)
    this.pos += bytesRead
    this.buf = Buffer.concat([this.buf.subarray(this.off), block.subarray(0, bytesRead)])
    this.off = 0
    this.onBytes(this.pos)
    return bytesRead
  }
}

/** The record stream: straight from the file, or from decrypted frames. */
interface RecordSource {
  exact(n: number): Promise<Buffer>
  /** Checks that nothing follows the END record. */
  end(): Promise<void>
}

class PlainSource implements RecordSource {
  constructor(
    private readonly file: BlockReader,
    private readonly archive: string,
  ) {}
  exact(n: number): Promise<Buffer> {
    return this.file.exact(n)
  }
  async end(): Promise<void> {
    if (!(await this.file.atEnd()))
      throw new ArchiveCorruptError(`Cannot read archive '${this.archive}': bytes follow its end record`)
  }
}

class DecryptedSource implements RecordSource {
  private buf = Buffer.alloc(0)
  private off = 0

  constructor(
    private readonly file: BlockReader,
    private readonly opener: ChunkOpener,
    private readonly archive: string,
  ) {}

  async exact(n: number): Promise<Buffer> {
    while (this.buf.byteLength - this.off < n) {
      if (this.opener.finished)
        throw new ArchiveCorruptError(
          `Cannot read archive '${this.archive}': a record runs past the final chunk`,
        )
      const plain = await this.nextFrame()
      this.buf = Buffer.concat([this.buf.subarray(this.off), plain])
      this.off = 0
    }
    const out = this.buf.subarray(this.off, this.off + n)
    this.off += n
    return out
  }

  async end(): Promise<void> {
    let extra = this.buf.byteLength - this.off
    while (!this.opener.finished) extra += (await this.nextFrame()).byteLength
    if (extra > 0 || !(await this.file.atEnd()))
      throw new ArchiveCorruptError(`Cannot read archive '${this.archive}': bytes follow its end record`)
  }

  private async nextFrame(): Promise<Buffer> {
    const { flags, bytes } = this.opener.frameBytes(await this.file.exact(FRAME_HEAD_BYTES))
    return this.opener.open(flags, await this.file.exact(bytes))
  }
}

/** Parses the cleartext header; throws for a file that is not an archive or of another version. */
async function readHeader(file: BlockReader, archive: string): Promise<ArchiveHeader> {
  const head = await file.upTo(PLAIN_HEADER_BYTES)
  if (head.byteLength < ARCHIVE_MAGIC.byteLength || !head.subarray(0, 8).equals(ARCHIVE_MAGIC))
    throw new ArchiveVersionError(`Cannot read '${archive}': it is not an ActorMesh snapshot archive`)
  if (head.byteLength < PLAIN_HEADER_BYTES)
    throw new ArchiveCorruptError(`Cannot read archive '${archive}': it is truncated (in its header)`)
  const version = head.readUInt16BE(8)
  if (version !== ARCHIVE_FORMAT_VERSION)
    throw new ArchiveVersionError(
      `Cannot read archive '${archive}': format version ${version} is not supported (this build reads version ${ARCHIVE_FORMAT_VERSION})`,
    )
  const flags = head[10]!
  if ((flags & ~ENCRYPTED) !== 0 || head[11] !== 0)
    throw new ArchiveCorruptError(`Cannot read archive '${archive}': its header has unknown flags`)
  if (!(flags & ENCRYPTED)) return { version, encrypted: false, bytes: Buffer.from(head) }
  const params = await file.exact(SALT_BYTES + KEY_CHECK_BYTES)
  return {
    version,
    encrypted: true,
    cipher: {
      salt: new Uint8Array(params.subarray(0, SALT_BYTES)),
      keyCheck: new Uint8Array(params.subarray(SALT_BYTES)),
    },
    bytes: Buffer.concat([head, params]),
  }
}

/** One thing read from an archive, in order: each part (consume its chunks before going on), then the manifest. */
export type ArchiveItem =
  | { kind: 'part'; part: ArchivePart; chunks: AsyncIterable<Uint8Array> }
  | { kind: 'manifest'; manifest: ArchiveManifest }

/** Options of `readArchive`. */
export interface ArchiveReadOptions {
  /** The key an encrypted archive was written with. */
  key?: Uint8Array
  signal?: AbortSignal
  /** Told the bytes of the file read so far (and its size), after every block. */
  onProgress?: (p: { bytes: number; total: number }) => void
}

/**
 * Reads an archive as a stream, checking everything: the header's version, each part's size and
 * SHA-256 (its `chunks` throw `ArchiveCorruptError` on their last step if they do not match), member
 * names, and at the end the whole-archive hash, the final frame (encrypted) and the manifest
 * against the parts. The manifest is yielded only once all of that held, so a consumer commits
 * nothing before it. A part's chunks that the consumer does not read are read (and checked) when
 * it asks for the next item.
 */
export async function* readArchive(
  path: string,
  options: ArchiveReadOptions = {},
): AsyncGenerator<ArchiveItem> {
  options.signal?.throwIfAborted()
  const fh = await open(path, 'r')
  try {
    const total = (await fh.stat()).size
    const file = new BlockReader(fh, path, (bytes) => options.onProgress?.({ bytes, total }))
    const header = await readHeader(file, path)
    let source: RecordSource
    if (header.encrypted) {
      if (!options.key)
        throw new ArchiveKeyError(`Cannot read archive '${path}': it is encrypted; give its key file`)
      source = new DecryptedSource(
        file,
        new ChunkOpener(options.key, header.cipher!, header.bytes, path),
        path,
      )
    } else source = new PlainSource(file, path)
    const whole = createHash('sha256').update(header.bytes)
    const next = () => readRecord(source, whole, path)
    const parts: ArchivePart[] = []
    for (;;) {
      options.signal?.throwIfAborted()
      const rec = await next()
      if (rec.type === RecordType.Part) {
        const part = checkPart(path, parseJson(path, rec.payload, 'part header'))
        if (parts.some((p) => p.name === part.name))
          throw corrupt(path, `member '${part.name}' appears twice`)
        const cursor = partCursor(part, next, path)
        yield { kind: 'part', part, chunks: { [Symbol.asyncIterator]: () => ({ next: cursor }) } }
        while (!(await cursor()).done) options.signal?.throwIfAborted()
        parts.push(part)
      } else if (rec.type === RecordType.Manifest) {
        const manifest = checkManifest(path, parseJson(path, rec.payload, 'manifest'), parts)
        const digest = whole.copy().digest()
        const end = await readRecord(source, undefined, path)
        if (end.type !== RecordType.End || !end.payload.equals(digest))
          throw corrupt(path, 'the whole-archive SHA-256 does not match (a byte was changed)')
        await source.end()
        yield { kind: 'manifest', manifest }
        return
      } else if (rec.type === RecordType.Data) throw corrupt(path, 'data outside a part')
      else
        throw corrupt(
          path,
          rec.type === RecordType.End ? 'it ends without a manifest' : `unknown record type ${rec.type}`,
        )
    }
  } finally {
    await fh.close()
  }
}

/** The chunks of one part: DATA records up to its size; the step after the last checks its SHA-256. */
function partCursor(
  part: ArchivePart,
  next: () => Promise<{ type: number; payload: Buffer }>,
  path: string,
): () => Promise<IteratorResult<Uint8Array>> {
  const hash: Hash = createHash('sha256')
  let received = 0
  let checked = false
  return async () => {
    if (received === part.bytes) {
      if (!checked && hash.digest('hex') !== part.sha256)
        throw corrupt(path, `member '${part.name}' does not match its SHA-256`)
      checked = true
      return { done: true, value: undefined }
    }
    const rec = await next()
    if (
      rec.type !== RecordType.Data ||
      received + rec.payload.byteLength > part.bytes ||
      rec.payload.byteLength === 0
    )
      throw corrupt(
        path,
        `member '${part.name}' is cut short or overlong after ${received} of ${part.bytes} bytes`,
      )
    received += rec.payload.byteLength
    hash.update(rec.payload)
    return { done: false, value: rec.payload }
  }
}

async function readRecord(
  source: RecordSource,
  whole: Hash | undefined,
  path: string,
): Promise<{ type: number; payload: Buffer }> {
  const head = await source.exact(5)
  const type = head[0]!
  const length = head.readUInt32BE(1)
  if (length > ARCHIVE_RECORD_BYTES_MAX) throw corrupt(path, `a record claims ${length} bytes`)
  const payload = await source.exact(length)
  whole?.update(head)
  if (type !== RecordType.Data) whole?.update(payload)
  return { type, payload }
}

function parseJson(path: string, bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    throw corrupt(path, `its ${what} is not JSON`)
  }
}

function corrupt(path: string, detail: string): ArchiveCorruptError {
  return new ArchiveCorruptError(`Cannot read archive '${path}': ${detail}`)
}

/** Reads only the header: whether the archive is encrypted and its version. */
export async function archiveHeader(path: string): Promise<ArchiveHeader> {
  const fh = await open(path, 'r')
  try {
    return await readHeader(new BlockReader(fh, path, () => {}), path)
  } finally {
    await fh.close()
  }
}

/**
 * Reads a whole archive, checking everything, without keeping any part: what `snapshot verify`
 * does. Resolves with the manifest.
 */
export async function verifyArchive(
  path: string,
  options: ArchiveReadOptions = {},
): Promise<ArchiveManifest> {
  for await (const item of readArchive(path, options)) if (item.kind === 'manifest') return item.manifest
  throw corrupt(path, 'it ends without a manifest')
}
