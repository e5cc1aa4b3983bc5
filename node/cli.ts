/**
 * `actormesh`: the command-line entry point. It only dispatches: each command lives in its own
 * file under node/cli/ (the demo cluster in node/demo.ts) and is loaded only when it runs, so
 * `actormesh call` does not load libp2p or the compiler. Every command reads its options from
 * flags > `ACTORMESH_*` environment > config file > defaults (node/cli/options.ts). Exit codes:
 * 0 ok, 1 runtime failure, 2 bad usage, 3 refused by the node (a 4xx answer). docs/cli.md has
 * the reference.
 */
import type { CliIo, Command } from './cli/command.js'
import { EXIT_USAGE, exitCodeOf } from './cli/errors.js'

/** Every command: its one-line summary and how to load it. */
const commands: Array<{ name: string; summary: string; load: () => Promise<Command> }> = [
  {
    name: 'start',
    summary: 'Run a mesh node (SIGTERM/SIGINT stops it gracefully).',
    load: async () => (await import('./cli/start.js')).startCommand,
  },
  {
    name: 'demo',
    summary: 'Run a local 3-node cluster with the chat and counter examples.',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  {
    name: 'status',
    summary: "Print a node's view: members, namespaces, leaders and replica health.",
    load: async () => (await import('./cli/status.js')).statusCommand,
  },
  {
    name: 'ns',
    summary: 'Create, list or delete namespaces.',
    load: async () => (await import('./cli/ns.js')).nsCommand,
  },
  {
    name: 'deploy',
    summary: 'Deploy a .wasm module to a namespace (optionally signed).',
    load: async () => (await import('./cli/deploy.js')).deployCommand,
  },
  {
    name: 'call',
    summary: 'Call an actor method and print the reply.',
    load: async () => (await import('./cli/call.js')).callCommand,
  },
  {
    name: 'build',
    summary: 'Compile an AssemblyScript actor to .wasm.',
    load: async () => (await import('./cli/build.js')).buildCommand,
  },
  {
    name: 'snapshot',
    summary: 'Write (or verify) a consistent, verifiable archive of a running cluster.',
    load: async () => (await import('./cli/backup.js')).snapshotCommand,
  },
  {
    name: 'restore',
    summary: 'Start a new cluster from an archive, or roll one namespace of a running cluster back.',
    load: async () => (await import('./cli/backup.js')).restoreCommand,
  },
  {
    name: 'replay',
    summary: 'Re-run recorded actor calls against a module and show the differences.',
    load: async () => (await import('./cli/replay.js')).replayCommand,
  },
  {
    name: 'keygen',
    summary: 'Make a module-signing key, or a cluster key (--cluster-key).',
    load: async () => (await import('./cli/keygen.js')).keygenCommand,
  },
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
    io.out.write(topic ? (await topic.load()).help : USAGE)
    return
  }
  const entry = commands.find((c) => c.name === name)
  if (!entry) {
    io.err.write(`actormesh: Unknown command '${name}'\n\n${USAGE}`)
    process.exit(EXIT_USAGE)
  }
  const command = await entry.load()
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
