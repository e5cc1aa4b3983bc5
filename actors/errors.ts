/**
 * Errors of the actor runtime that a caller handles. Each has a stable `code` (listed in
 * docs/errors.md) and says whether retrying the same call elsewhere or later can succeed.
 * Errors of a call (fuel, trap, limits) fail that call only: its writes are dropped.
 */

/** Base of every actor runtime error. */
export class ActorsError extends Error {
  /** Stable machine-readable code, `ACTORMESH_...`. */
  readonly code: string
  /** True when the same call may succeed if retried (on the new leader, or later). */
  readonly retryable: boolean

  constructor(code: string, message: string, retryable = false) {
    super(message)
    this.code = code
    this.retryable = retryable
  }
}

/** Bytes that are not a valid WebAssembly module, or one that breaks ABI v1 (exports, version). */
export class ModuleInvalidError extends ActorsError {
  override name = 'ModuleInvalidError'
  constructor(message: string) {
    super('ACTORMESH_MODULE_INVALID', message)
  }
}

/** A module imports a function the namespace does not grant (or that ABI v1 does not know). */
export class CapabilityDeniedError extends ActorsError {
  override name = 'CapabilityDeniedError'
  constructor(
    message: string,
    /** The import, as `module.name`. */
    readonly importName: string,
  ) {
    super('ACTORMESH_CAPABILITY_DENIED', message)
  }
}

/** A module's memory is over `memoryPagesMax` (at deploy), or a call could not grow memory. */
export class MemoryLimitError extends ActorsError {
  override name = 'MemoryLimitError'
  constructor(message: string) {
    super('ACTORMESH_MEMORY_LIMIT', message)
  }
}

/** A namespace requires signed modules and the signature is missing, tampered or by another key. */
export class SignatureInvalidError extends ActorsError {
  override name = 'SignatureInvalidError'
  constructor(message: string) {
    super('ACTORMESH_SIGNATURE_INVALID', message)
  }
}

/** No module is deployed for the namespace on this runtime. */
export class NamespaceNotDeployedError extends ActorsError {
  override name = 'NamespaceNotDeployedError'
  constructor(message: string) {
    super('ACTORMESH_NAMESPACE_NOT_DEPLOYED', message)
  }
}

/** A call used more than `callFuelMax` fuel (a runaway loop). Deterministic: retrying fails again. */
export class FuelExhaustedError extends ActorsError {
  override name = 'FuelExhaustedError'
  constructor(message: string) {
    super('ACTORMESH_FUEL_EXHAUSTED', message)
  }
}

/** A call trapped (`unreachable`, out-of-bounds access, an SDK abort, a division by zero). */
export class ActorTrapError extends ActorsError {
  override name = 'ActorTrapError'
  constructor(message: string) {
    super('ACTORMESH_ACTOR_TRAP', message)
  }
}

/** A call recursed deeper than the engine's stack allows. */
export class StackOverflowError extends ActorsError {
  override name = 'StackOverflowError'
  constructor(message: string) {
    super('ACTORMESH_STACK_OVERFLOW', message)
  }
}

/** A call ran past `callDeadlineMs` of wall time (a backstop; fuel stops loops first). */
export class CallDeadlineError extends ActorsError {
  override name = 'CallDeadlineError'
  constructor(message: string) {
    super('ACTORMESH_CALL_DEADLINE', message, true)
  }
}

/** The actor does not implement the method. */
export class MethodNotFoundError extends ActorsError {
  override name = 'MethodNotFoundError'
  constructor(message: string) {
    super('ACTORMESH_METHOD_NOT_FOUND', message)
  }
}

/** The actor failed the call on purpose (SDK `fail(message)`), e.g. a rejected argument. */
export class ActorFailedError extends ActorsError {
  override name = 'ActorFailedError'
  constructor(message: string) {
    super('ACTORMESH_ACTOR_FAILED', message)
  }
}

/** A payload, reply or broadcast is over its byte limit. `limit` names the config value. */
export class SizeLimitError extends ActorsError {
  override name = 'SizeLimitError'
  constructor(
    message: string,
    /** `payloadBytesMax`, `replyBytesMax`, `broadcastBytesMax` or `keyBytesMax`. */
    readonly limit: string,
  ) {
    super('ACTORMESH_SIZE_LIMIT', message)
  }
}

/** A state key is not well-formed UTF-8, too long, or in the reserved space. */
export class InvalidKeyError extends ActorsError {
  override name = 'InvalidKeyError'
  constructor(message: string) {
    super('ACTORMESH_INVALID_KEY', message)
  }
}

/** A call's writes would take the actor's state over `actorStateBytesMax`. */
export class StateQuotaError extends ActorsError {
  override name = 'StateQuotaError'
  constructor(message: string) {
    super('ACTORMESH_STATE_QUOTA', message)
  }
}

/** Pending writes were discarded (leadership lost): the call was dropped; retry on the new leader. */
export class PendingDiscardedError extends ActorsError {
  override name = 'PendingDiscardedError'
  constructor(message: string) {
    super('ACTORMESH_PENDING_DISCARDED', message, true)
  }
}

/** Too many calls are queued for one actor (`queuedCallsMax`); retry later. */
export class ActorBusyError extends ActorsError {
  override name = 'ActorBusyError'
  constructor(message: string) {
    super('ACTORMESH_ACTOR_BUSY', message, true)
  }
}

/** A method the module declares read-only tried to write state, set an alarm or broadcast. */
export class ReadonlyViolationError extends ActorsError {
  override name = 'ReadonlyViolationError'
  constructor(message: string) {
    super('ACTORMESH_READONLY_VIOLATION', message)
  }
}
