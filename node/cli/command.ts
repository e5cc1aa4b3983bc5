/**
 * The shape of one CLI command: a name, a one-line summary for the command list, its help text
 * and `run`. Each command lives in its own file under node/cli/; node/cli.ts only dispatches.
 */

/** Where a command writes and what it reads besides its arguments. */
export interface CliIo {
  out: NodeJS.WriteStream
  err: NodeJS.WriteStream
  env: Record<string, string | undefined>
}

/** One `actormesh <name>` command. */
export interface Command {
  name: string
  /** One line for `actormesh --help`. */
  summary: string
  /** Printed for `actormesh <name> --help` and after a usage error. */
  help: string
  run(argv: string[], io: CliIo): Promise<void>
}

/** The flags every command takes, for the help texts. */
export const COMMON_FLAGS_HELP = `  --config FILE         JSON file of flag values (keys are long flag names) [ACTORMESH_CONFIG]
  -h, --help            this help`
