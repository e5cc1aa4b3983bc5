/**
 * `actormesh`: the command-line entry point. It only dispatches: each command lives in its own
 * file under node/cli/ (the demo cluster in node/demo.ts). Every command reads its options from
 * flags > `ACTORMESH_*` environment > config file > defaults (node/cli/options.ts). Exit codes:
 * 0 ok, 1 runtime failure, 2 bad usage, 3 refused by the node (a 4xx answer). docs/cli.md has
 * the reference.
 */

import { restoreCommand, snapshotCommand } from './cli/backup.js'
import { buildCommand } from './cli/build.js'
import { callCommand } from './cli/call.js'
import type { CliIo, Command } from './cli/command.js'
import { deployCommand } from './cli/deploy.js'
import { EXIT_USAGE, exitCodeOf } from './cli/errors.js'
import { keygenCommand } from './cli/keygen.js'
import { nsCommand } from './cli/ns.js'
import { replayCommand } from './cli/replay.js'
import { startCommand } from './cli/start.js'
import { statusCommand } from './cli/status.js'
import { demoCommand } from './demo.js'

const commands: Command[] = [
  startCommand,
  demoCommand,
  statusCommand,
  nsCommand,
  deployCommand,
  callCommand,
  buildCommand,
  snapshotCommand,
  restoreCommand,
  replayCommand,
  keygenCommand,
]

const USAGE = `Usage: actormesh <command> [flags]       (actormesh <command> --help for its flags)

Commands:
${commands.map((c) => `  ${c.name.padEnd(9)}${c.summary}`).join('\n')}

Every flag can also come from ACTORMESH_<FLAG> in the environment or a JSON config file
(--config FILE or ACTORMESH_CONFIG); flags win, then the environment, then the file.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage, 3 refused by the node (4xx). Docs: docs/cli.md
`

const io: CliIo = { out: process.stdout, err: process.stderr, env: process.env }

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = commands.find((c) => c.name === rest[0])
    io.out.write(topic ? topic.help : USAGE)
    return
  }
  const command = commands.find((c) => c.name === name)
  if (!command) {
    io.err.write(`actormesh: Unknown command '${name}'\n\n${USAGE}`)
    process.exit(EXIT_USAGE)
  }
  try {
    await command.run(rest, io)
  } catch (e) {
    const code = exitCodeOf(e)
    io.err.write(`actormesh: ${(e as Error).message}\n${code === EXIT_USAGE ? `\n${command.help}` : ''}`)
    process.exit(code)
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    io.err.write(`actormesh: ${(e as Error).stack ?? String(e)}\n`)
    process.exit(1)
  },
)
