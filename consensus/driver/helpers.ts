/** Small pure helpers of the driver. */
import type { Logger } from '../types.js'

/** A logger that drops everything (the default). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** Rejects `request` with the signal's reason on abort; removes the listener once it settles. */
export function withAbort(
  request: { settled: boolean; resolve(v: never): void; reject(e: Error): void },
  signal: AbortSignal,
  forget: () => void,
): void {
  const resolve = request.resolve
  const reject = request.reject
  const onAbort = () => {
    if (request.settled) return
    request.settled = true
    forget()
    reject(signal.reason as Error)
  }
  signal.addEventListener('abort', onAbort, { once: true })
  request.resolve = (v: never) => {
    signal.removeEventListener('abort', onAbort)
    resolve(v)
  }
  request.reject = (e: Error) => {
    signal.removeEventListener('abort', onAbort)
    reject(e)
  }
}

/** The consensus logger has no `child`: add the group to every record instead. */
export function groupLogger(logger: Logger, group: string): Logger {
  if (logger === silentLogger) return silentLogger
  return {
    debug: (obj, msg) => logger.debug({ group, ...obj }, msg),
    info: (obj, msg) => logger.info({ group, ...obj }, msg),
    warn: (obj, msg) => logger.warn({ group, ...obj }, msg),
    error: (obj, msg) => logger.error({ group, ...obj }, msg),
  }
}
