/**
 * Errors of the request path a client handles. Each has a stable `code` (docs/errors.md), says
 * whether retrying can succeed, and may carry `details` that travel over RPC (a leader hint).
 */
export class NodeError extends Error {
  readonly code: string
  readonly retryable: boolean
  readonly details: Record<string, unknown>

  constructor(code: string, message: string, retryable: boolean, details: Record<string, unknown> = {}) {
    super(message)
    this.code = code
    this.retryable = retryable
    this.details = details
  }
}

/** This node does not lead the namespace; `details.leader` is the leader it knows ('' if none). */
export class NotLeaderError extends NodeError {
  override name = 'NotLeaderError'
  constructor(namespace: string, leader: string) {
    super(
      'ACTORMESH_NOT_LEADER',
      `Not the leader of '${namespace}'${leader ? `; try ${leader}` : ''}`,
      true,
      { leader },
    )
  }
}

/** No node is known to lead the namespace right now (an election is under way); retry shortly. */
export class NoLeaderError extends NodeError {
  override name = 'NoLeaderError'
  constructor(namespace: string, retryAfterMs: number) {
    super('ACTORMESH_NO_LEADER', `No leader of '${namespace}' is known; retry in ${retryAfterMs} ms`, true, {
      retryAfterMs,
    })
  }
}

/** The call may or may not have been applied (leadership changed while it was in flight). */
export class OutcomeUnknownError extends NodeError {
  override name = 'OutcomeUnknownError'
  constructor(message: string) {
    super('ACTORMESH_OUTCOME_UNKNOWN', message, true)
  }
}

/** The call was certainly not applied (dropped, or voided by an earlier dropped call); retry is safe. */
export class NotAppliedError extends NodeError {
  override name = 'NotAppliedError'
  constructor(message: string) {
    super('ACTORMESH_NOT_APPLIED', message, true)
  }
}

/** Neither `_system` nor the catalog knows a node of that peer id. */
export class NodeNotFoundError extends NodeError {
  override name = 'NodeNotFoundError'
  constructor(peer: string) {
    super('ACTORMESH_NODE_NOT_FOUND', `No node '${peer}' in the cluster`, false)
  }
}

/** The catalog has no namespace of that name. */
export class NamespaceNotFoundError extends NodeError {
  override name = 'NamespaceNotFoundError'
  constructor(namespace: string) {
    super('ACTORMESH_NAMESPACE_NOT_FOUND', `No namespace '${namespace}'`, false)
  }
}
