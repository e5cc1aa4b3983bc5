/** Thrown when an invariant that must never break has broken: a bug, never bad input. */
export class AssertionError extends Error {
  override name = 'AssertionError'
}

/** Guard an invariant (STYLE.md §6). The message is built lazily so hot paths pay nothing. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new AssertionError(typeof message === 'function' ? message() : message)
  }
}
