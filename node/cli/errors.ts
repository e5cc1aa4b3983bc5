/**
 * How a CLI command fails, and the exit code each failure gives (docs/cli.md): 0 ok, 1 a runtime
 * failure (no node answers, a node error, a build that does not compile), 2 bad usage, 3 the node
 * refused the request (a 4xx answer: unknown namespace, conflict, bad module, no permission).
 */
import { AdminAnswerError } from '../backup/client.js'

/** Exit code of a successful command. */
export const EXIT_OK = 0
/** Exit code of a runtime failure. */
export const EXIT_FAILURE = 1
/** Exit code of bad usage: an unknown flag, a missing argument, a bad value. */
export const EXIT_USAGE = 2
/** Exit code when the node refused the request with a 4xx answer. */
export const EXIT_REFUSED = 3

/** Bad usage of a command: the message says what is wrong; the CLI adds the command's help. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** A node answered a request with a 4xx status; `code` is its stable `ACTORMESH_*` code. */
export class RefusedError extends Error {
  override name = 'RefusedError'
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** The exit code of a command that threw `e`. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof UsageError) return EXIT_USAGE
  if ((e as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS')) return EXIT_USAGE
  if (e instanceof RefusedError) return EXIT_REFUSED
  // The backup commands' client (snapshot, restore) answers with its own error class.
  if (e instanceof AdminAnswerError && e.status >= 400 && e.status < 500) return EXIT_REFUSED
  return EXIT_FAILURE
}
