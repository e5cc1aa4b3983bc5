/**
 * The shape of one CLI command: a name, its help text and `run`. Each command lives in its own
 * file under node/cli/; node/cli.ts lists them with a one-line summary and loads only the one run.
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
  /** Printed for `actormesh <name> --help` and after a usage error. */
  help: string
  run(argv: string[], io: CliIo): Promise<void>
}

/** The flags every command takes, for the help texts. */
export const COMMON_FLAGS_HELP = `  --config FILE         JSON file of flag values (keys are long flag names) [ACTORMESH_CONFIG]
  -h, --help            this help`
