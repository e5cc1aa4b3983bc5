/**
 * The runtime's limits, each a named value with its unit last (STYLE.md §7), and the
 * capabilities ABI v1 defines.
 */

/** Every limit of the actor runtime. All are per call or per actor unless named otherwise. */
export interface ActorLimits {
  /** Fuel one call may use (see docs/abi.md for what one unit is). Also bounds a start function. */
  callFuelMax: number
  /** Memory ceiling of a module in 64 KiB pages; a module without a maximum gets this one. */
  memoryPagesMax: number
  /** Bytes of method name plus payload of one call. */
  payloadBytesMax: number
  /** Bytes of one reply. */
  replyBytesMax: number
  /** Bytes of keys plus values one actor may store (loaded whole on activation). */
  actorStateBytesMax: number
  /** Bytes of one state key (UTF-8). */
  keyBytesMax: number
  /** Wall-time backstop of one call, checked in host calls and after the call. */
  callDeadlineMs: number
  /** Actors kept resident (state loaded) at once, over all namespaces. */
  residentActorsMax: number
  /** Bytes of resident actor state (plus replay records), over all namespaces. */
  residentBytesMax: number
  /** An actor idle this long is evicted by `evictIdle`. */
  idleEvictMs: number
  /** Bytes one call may broadcast, in total. */
  broadcastBytesMax: number
  /** Calls recorded per resident actor for replay (oldest dropped first). */
  replayRingSize: number
  /** Calls waiting behind the input gate of one actor; more fail with `ActorBusyError`. */
  queuedCallsMax: number
  /** Calls whose writes are pending (not yet committed) per actor; more wait in the queue. */
  pendingCallsMax: number
  /** Compiled modules kept in the cache by hash. */
  compiledModulesMax: number
  /** Bytes of one log message kept (longer ones are cut). */
  logBytesMax: number
}

/** Defaults sized for a node with a few GiB of memory. */
export const defaultLimits: Readonly<ActorLimits> = Object.freeze({
  callFuelMax: 10_000_000,
  memoryPagesMax: 256,
  payloadBytesMax: 1 << 20,
  replyBytesMax: 1 << 20,
  actorStateBytesMax: 8 << 20,
  keyBytesMax: 512,
  callDeadlineMs: 1_000,
  residentActorsMax: 10_000,
  residentBytesMax: 256 << 20,
  idleEvictMs: 60_000,
  broadcastBytesMax: 256 << 10,
  replayRingSize: 8,
  queuedCallsMax: 1_000,
  pendingCallsMax: 64,
  compiledModulesMax: 64,
  logBytesMax: 4_096,
})

/** Checks that every limit is a positive integer; returns the merged limits. */
export function resolveLimits(overrides: Partial<ActorLimits> | undefined): ActorLimits {
  const limits = { ...defaultLimits, ...overrides }
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`Bad limit '${name}': '${value}'`)
  }
  if (limits.memoryPagesMax > 65_536)
    throw new RangeError(`Bad limit 'memoryPagesMax': '${limits.memoryPagesMax}'`)
  return limits
}

/** Every import of ABI v1 (module `actormesh`). */
export const abiImports = [
  'state_get',
  'state_set',
  'state_delete',
  'state_list',
  'broadcast',
  'log',
  'now',
  'random',
  'alarm_set',
  'alarm_cancel',
  'panic',
] as const

/** An ABI v1 import name; a namespace grants a set of them as capabilities. */
export type Capability = (typeof abiImports)[number]

/** `panic` is how the SDK reports aborts and failures; refusing it would only hide messages. */
export const alwaysGranted: ReadonlySet<string> = new Set(['panic'])

/** The reserved state key holding an actor's alarm time (ms, f64 little-endian). */
export const alarmKey = '\u0000alarm'
