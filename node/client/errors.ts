/**
 * The one error class of the client. Every failure a caller handles carries the node's stable
 * `code` (docs/errors.md) or one of the client's own `ACTORMESH_CLIENT_*` codes, the HTTP status
 * when there was an answer, and whether retrying the same request can succeed.
 */
export class ActorMeshError extends Error {
  override name = 'ActorMeshError'
  /** A stable code, e.g. `ACTORMESH_NAMESPACE_NOT_FOUND` (docs/errors.md lists them all). */
  readonly code: string
  /** The HTTP status of the node's answer; 0 when there was none (network, timeout, WebSocket). */
  readonly status: number
  /** True when the same request can succeed later (a 503, a node that did not answer). */
  readonly retryable: boolean
  /** Extra fields of the answer: `since` for `ACTORMESH_EVENTS_GONE`, `pos` for a full queue. */
  readonly details: Record<string, unknown>

  constructor(
    code: string,
    message: string,
    init: { status?: number; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause })
    this.code = code
    this.status = init.status ?? 0
    this.retryable = init.retryable ?? false
    this.details = init.details ?? {}
  }
}

/** No node answered: every attempt failed to connect, or the last one did. Retryable. */
export const UNREACHABLE = 'ACTORMESH_CLIENT_UNREACHABLE'
/** One attempt took longer than `timeoutMs`; its outcome is unknown. Retryable. */
export const TIMEOUT = 'ACTORMESH_CLIENT_TIMEOUT'
/** A node answered with something that is not an ActorMesh answer (no JSON error body). */
export const BAD_RESPONSE = 'ACTORMESH_CLIENT_BAD_RESPONSE'
/** A subscription's consumer fell `queueEventsMax` events behind; resubscribe with `after`. */
export const QUEUE_FULL = 'ACTORMESH_CLIENT_QUEUE_FULL'
