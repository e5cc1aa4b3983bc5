/**
 * The chaos clients' HTTP: one call, classified as Jepsen would record it. `ok` — answered 200;
 * `fail` — certainly not applied: a 503 whose code says so (`ACTORMESH_NOT_APPLIED`,
 * `ACTORMESH_NO_LEADER`, `ACTORMESH_NOT_LEADER`; docs/errors.md), or a refused connection (the
 * request never left); `info` — anything else: a timeout, a reset, a 504, any other 503
 * (`ACTORMESH_OUTCOME_UNKNOWN`, `ACTORMESH_PEER_UNREACHABLE`, …), which may or may not have been
 * applied.
 */
import { Agent, request } from 'node:http'

/** 503 codes that mean the call certainly did not take effect. */
export const NOT_APPLIED_CODES = new Set([
  'ACTORMESH_NOT_APPLIED',
  'ACTORMESH_NO_LEADER',
  'ACTORMESH_NOT_LEADER',
])

/** One attempt's result. */
export interface Attempt {
  type: 'ok' | 'fail' | 'info'
  /** HTTP status, 0 when there was no answer. */
  status: number
  /** The reply body (200) or the error body. */
  body: string
  /** Error code, socket error code, or `timeout`. */
  error?: string
  servedBy?: string
  replayed?: boolean
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 })

/** POSTs `payload` to `url` (a gateway base) + `path`, giving up after `timeoutMs`. */
export function post(
  url: string,
  path: string,
  payload: string,
  options: { key?: string; timeoutMs: number },
): Promise<Attempt> {
  const target = new URL(path, url)
  return new Promise((resolve) => {
    let done = false
    const finish = (a: Attempt) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(a)
    }
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          'content-length': Buffer.byteLength(payload),
          ...(options.key ? { 'idempotency-key': options.key } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (d: Buffer) => chunks.push(d))
        res.on('error', (e: NodeJS.ErrnoException) =>
          finish({ type: 'info', status: 0, body: '', error: e.code ?? 'response-error' }),
        )
        res.on('end', () =>
          finish(classify(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), res.headers)),
        )
      },
    )
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'))
      finish({ type: 'info', status: 0, body: '', error: 'timeout' })
    }, options.timeoutMs)
    req.on('error', (e: NodeJS.ErrnoException) => {
      // A refused connection never carried the request: certainly not applied.
      finish({
        type: e.code === 'ECONNREFUSED' ? 'fail' : 'info',
        status: 0,
        body: '',
        error: e.code ?? e.message,
      })
    })
    req.end(payload)
  })
}

function classify(
  status: number,
  body: string,
  headers: Record<string, string | string[] | undefined>,
): Attempt {
  if (status === 200) {
    return {
      type: 'ok',
      status,
      body,
      servedBy: String(headers['x-actormesh-served-by'] ?? ''),
      replayed: headers['x-actormesh-replayed'] === 'true',
    }
  }
  let code = `http-${status}`
  try {
    code = (JSON.parse(body) as { code?: string }).code ?? code
  } catch {}
  const definite = status === 503 && NOT_APPLIED_CODES.has(code)
  return { type: definite ? 'fail' : 'info', status, body, error: code }
}

/** GETs JSON, failing after `timeoutMs`. */
export async function getJson(url: string, timeoutMs = 5_000): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`)
  return res.json()
}

/** Sends JSON with `method`, failing after `timeoutMs`; resolves with the status and JSON body. */
export async function sendJson(
  url: string,
  method: string,
  body: unknown,
  timeoutMs = 10_000,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, {
    method,
    body: body instanceof Uint8Array ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: res.status, body: parsed }
}

/** Closes idle keep-alive sockets (end of a run). */
export function closeAgent(): void {
  agent.destroy()
}
