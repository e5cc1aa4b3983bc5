/**
 * Retry timing: exponential backoff with full jitter, floored by a node's `Retry-After`, and a
 * sleep that an AbortSignal ends early. Pure except for `sleep`.
 */

/** How often and how long the client retries. */
export interface RetryOptions {
  /** Tries of one request in all, the first included (1 = never retry). Default 6. */
  attempts: number
  /** The backoff cap of the first retry, doubled for each later one. Default 100 ms. */
  baseMs: number
  /** No wait is longer than this, not even one a node asks for with `Retry-After`. Default 5,000 ms. */
  maxMs: number
}

export const RETRY_DEFAULTS: RetryOptions = { attempts: 6, baseMs: 100, maxMs: 5_000 }

/** Checks and completes retry options; throws RangeError naming the bad value. */
export function retryOptions(given: Partial<RetryOptions> = {}): RetryOptions {
  const r = { ...RETRY_DEFAULTS, ...given }
  if (!Number.isInteger(r.attempts) || r.attempts < 1)
    throw new RangeError(`Bad retry.attempts '${r.attempts}': expected an integer of at least 1`)
  for (const name of ['baseMs', 'maxMs'] as const) {
    if (!Number.isFinite(r[name]) || r[name] < 0)
      throw new RangeError(`Bad retry.${name} '${r[name]}': expected a number of at least 0`)
  }
  return r
}

/**
 * The wait before retry number `retry` (1 for the first retry): a uniformly random share of
 * `min(maxMs, baseMs · 2^(retry-1))` ("full jitter", so clients that failed together do not retry
 * together), but at least what the node asked for (`retryAfterMs`), and never over `maxMs`.
 * `random` returns a number in [0, 1); tests pass a seeded one.
 */
export function backoffMs(
  retry: number,
  options: RetryOptions,
  random: () => number,
  retryAfterMs = 0,
): number {
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(retry - 1, 30))
  const jittered = Math.floor(random() * cap)
  return Math.min(options.maxMs, Math.max(jittered, retryAfterMs))
}

/** The wait a `Retry-After` header asks for (seconds or an HTTP date), in ms; 0 when absent or bad. */
export function retryAfterMs(header: string | null, now = Date.now()): number {
  if (header === null) return 0
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1_000
  const at = Date.parse(header)
  return Number.isNaN(at) ? 0 : Math.max(0, at - now)
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * A seeded random source in [0, 1) (mulberry32, as consensus/sim/prng.ts), for reproducible jitter
 * in tests. Its own copy: the client imports nothing from the rest of the project, so a bundler can
 * ship it alone.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}
