/**
 * The least of a gRPC client the etcd comparison needs, on node:http2 (no gRPC library): unary
 * calls with a hand-encoded protobuf request, over one HTTP/2 connection per server shared by all
 * the load's clients (as etcd's own clientv3 and benchmark tool do). The answer is only its gRPC
 * status; the response message is read and dropped.
 */
import { type ClientHttp2Session, connect, constants } from 'node:http2'

/** etcd's put: `etcdserverpb.KV/Put`. */
export const ETCD_PUT_PATH = '/etcdserverpb.KV/Put'
/** gRPC's status codes the load client tells apart. */
export const GRPC_OK = 0
/** etcd answers Unavailable while it has no leader or the leader changed: retried like a 503. */
export const GRPC_UNAVAILABLE = 14

function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}

/** A protobuf length-delimited field: tag (field number, wire type 2), length, bytes. */
function bytesField(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes])
}

/** A gRPC message frame: not compressed, 4-byte big-endian length, the message. */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head.writeUInt32BE(message.length, 1)
  return Buffer.concat([head, message])
}

/** etcd's `PutRequest { bytes key = 1; bytes value = 2; }` in a gRPC frame. */
export function etcdPutFrame(key: string, value: string): Buffer {
  return grpcFrame(Buffer.concat([bytesField(1, Buffer.from(key)), bytesField(2, Buffer.from(value))]))
}

/** The outcome of a unary call: gRPC's status and message (from the trailers, or trailers-only headers). */
export interface GrpcAnswer {
  status: number
  message: string
}

/** One HTTP/2 connection per server URL, opened at first use and again after it closes or fails. */
export class GrpcChannels {
  private readonly sessions = new Map<string, ClientHttp2Session>()

  private session(url: string): ClientHttp2Session {
    const open = this.sessions.get(url)
    if (open && !open.closed && !open.destroyed) return open
    const session = connect(url)
    // A failed connection fails the calls on it; the next call opens a new one.
    session.on('error', () => {})
    session.on('close', () => {
      if (this.sessions.get(url) === session) this.sessions.delete(url)
    })
    this.sessions.set(url, session)
    return session
  }

  /** Sends `frame` to `path` on `url`; rejects on a transport failure or after `timeoutMs`. */
  unary(url: string, path: string, frame: Buffer, timeoutMs: number): Promise<GrpcAnswer> {
    return new Promise((resolve, reject) => {
      const stream = this.session(url).request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      })
      let status: number | undefined
      let message = ''
      const take = (headers: Record<string, unknown>) => {
        if (headers['grpc-status'] === undefined) return
        status = Number(headers['grpc-status'])
        message = decodeURIComponent(String(headers['grpc-message'] ?? ''))
      }
      stream.on('response', (headers) => {
        const http = Number(headers[':status'])
        if (http !== 200) {
          status = -1
          message = `HTTP ${http}`
        }
        take(headers)
      })
      stream.on('trailers', take)
      stream.on('data', () => {})
      stream.setTimeout(timeoutMs, () => {
        stream.close(constants.NGHTTP2_CANCEL)
        reject(Object.assign(new Error('attempt timed out'), { code: 'TIMEOUT' }))
      })
      stream.on('error', reject)
      stream.on('end', () => {
        if (status === undefined)
          reject(Object.assign(new Error('no grpc-status'), { code: 'GRPC_NO_STATUS' }))
        else resolve({ status, message })
      })
      stream.end(frame)
    })
  }

  /** Closes every connection. */
  close(): void {
    for (const s of this.sessions.values()) s.destroy()
    this.sessions.clear()
  }
}
