/** Small pure helpers of the driver. */
import { type Entry, type Logger, type Message, MessageType, NONE, type NodeId } from '../types.js'

/** A logger that drops everything (the default). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** A local Prop carrying several entries (what `RawNode.propose` builds for one). */
export function propMessage(from: NodeId, entries: Entry[]): Message {
  return {
    type: MessageType.Prop,
    to: NONE,
    from,
    term: 0,
    logTerm: 0,
    index: 0,
    entries,
    commit: 0,
    reject: false,
    rejectHint: 0,
  }
}

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
