/**
 * The CLI's side of the admin routes (node/backup/routes.ts): JSON requests with retries on the
 * retryable (503) answers, and clear messages for the rest.
 */

/** How long a request waits for a node's answer (headers), in milliseconds. */
export const ADMIN_ANSWER_TIMEOUT_MS = 60_000

/** A node's gateway URL from `--node`: an http(s) URL without a trailing slash. */
export function nodeUrl(text: string, usage: (message: string) => Error): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw usage(`Invalid --node '${text}': expected the node's gateway URL, e.g. http://127.0.0.1:8080`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw usage(`Invalid --node '${text}': expected an http:// or https:// URL`)
  return url.href.replace(/\/+$/, '')
}

/** A request to an admin route: `retryMs` bounds retries of 503s; `token` is sent as a bearer token. */
export type AdminInit = RequestInit & { retryMs?: number; token?: string | undefined }

/** An error answer of a node, with its stable code. */
export class AdminAnswerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'AdminAnswerError'
  }
}

/**
 * Sends a request and returns the response once it is 2xx; a 503 is retried after its
 * `Retry-After` until `retryMs` has passed; any other answer throws `AdminAnswerError`.
 */
export async function adminRequest(base: string, path: string, init: AdminInit = {}): Promise<Response> {
  const deadline = Date.now() + (init.retryMs ?? 30_000)
  if (init.token) init = { ...init, headers: { ...init.headers, authorization: `Bearer ${init.token}` } }
  for (;;) {
    init.signal?.throwIfAborted()
    let res: Response
    try {
      const signals = [AbortSignal.timeout(ADMIN_ANSWER_TIMEOUT_MS), ...(init.signal ? [init.signal] : [])]
      res = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.any(signals) })
    } catch (e) {
      init.signal?.throwIfAborted()
      const cause = (e as { cause?: { code?: unknown } }).cause?.code
      throw new Error(
        `Cannot reach ${base} (${typeof cause === 'string' ? cause : (e as Error).message}): is a node running?`,
      )
    }
    if (res.ok) return res
    const text = await res.text()
    let code = 'ACTORMESH_INTERNAL'
    let message = text.trim()
    try {
      const body = JSON.parse(text) as { code?: unknown; message?: unknown }
      if (typeof body.code === 'string') code = body.code
      if (typeof body.message === 'string') message = body.message
    } catch {}
    if (res.status === 503 && Date.now() < deadline) {
      const wait = Number(res.headers.get('retry-after') ?? '1')
      await new Promise((r) => setTimeout(r, Math.min(5_000, Math.max(200, wait * 1_000))))
      continue
    }
    throw new AdminAnswerError(
      res.status,
      code,
      `Node at ${base} answered ${res.status} to ${init.method ?? 'GET'} ${path}: ${message}`,
    )
  }
}

/** `adminRequest` answering JSON. */
export async function adminJson<T>(base: string, path: string, init: AdminInit = {}): Promise<T> {
  return (await (await adminRequest(base, path, init)).json()) as T
}

/** Draws progress on a terminal (one redrawn line) or writes a line per step elsewhere. */
export class ProgressView {
  private drawn = false

  constructor(private readonly stream: NodeJS.WriteStream) {}

  /** A bar with a label (terminal only; elsewhere nothing, so logs stay readable). */
  bar(fraction: number, label: string): void {
    if (!this.stream.isTTY) return
    const width = 30
    const done = Math.max(0, Math.min(width, Math.round(fraction * width)))
    const line = `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${label}`
    this.stream.write(`\r\x1b[2K${line.slice(0, (this.stream.columns ?? 120) - 1)}`)
    this.drawn = true
  }

  /** A line of its own (clears a bar first). */
  line(text: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K')
    this.drawn = false
    this.stream.write(`${text}\n`)
  }

  /** Ends the bar's line. */
  end(): void {
    if (this.drawn) this.stream.write('\n')
    this.drawn = false
  }
}

/** Bytes for people: kB below a megabyte, MB with one decimal above. */
export function mb(bytes: number): string {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`
}
