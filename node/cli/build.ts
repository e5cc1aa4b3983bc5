/**
 * `actormesh build SRC.ts [-o OUT.wasm]`: an AssemblyScript actor to a `.wasm` module with
 * actors/build.ts (the SDK on the path, the options ABI v1 needs).
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { bool, commandOptions, type OptionSpec, str } from './options.js'

const help = `Usage: actormesh build SRC.ts [-o OUT.wasm] [--no-optimize]

Compiles an AssemblyScript actor (importing actors/sdk/assembly) to a WebAssembly module for
'actormesh deploy'. The source must be inside the ActorMesh checkout (the compiler resolves the SDK
from there). Default OUT: for <dir>/assembly/index.ts, <dir>/build/<dir name>.wasm; else the
source's path with .wasm for .ts.

Flags:
  -o, --out FILE        where to write the module
  --no-optimize         skip Binaryen's optimizer (faster build, bigger module)
${COMMON_FLAGS_HELP}
`

const options: Record<string, OptionSpec> = {
  out: { type: 'string', short: 'o', env: null },
  'no-optimize': { type: 'boolean', env: null },
}

/** `actormesh build`. */
export const buildCommand: Command = {
  name: 'build',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help, { positionals: true })
    if (!o) return
    if (o.positionals.length !== 1) throw new UsageError('build needs exactly one SRC.ts')
    const src = o.positionals[0]!
    if (!(await stat(src).catch(() => undefined))?.isFile())
      throw new UsageError(`Cannot build '${src}': no such file`)
    const out = str(o, 'out') ?? defaultOut(src)
    io.err.write(`building ${src} (the compiler takes a few seconds to load)…\n`)
    const started = performance.now()
    // Imported here: the compiler is large, and no other command needs it.
    const { buildActor } = await import('../../actors/build.js')
    await buildActor(src, out, { optimize: !bool(o, 'no-optimize') })
    const bytes = await readFile(out)
    const hash = createHash('sha256').update(bytes).digest('hex')
    const s = ((performance.now() - started) / 1000).toFixed(1)
    io.out.write(`Built ${out}: ${(bytes.length / 1000).toFixed(1)} kB, sha256 ${hash}, in ${s} s\n`)
  },
}

/** Where `build` writes when no `-o` is given (see the help). */
export function defaultOut(src: string): string {
  const dir = dirname(src)
  if (basename(src) === 'index.ts' && basename(dir) === 'assembly') {
    const project = dirname(dir)
    return join(project, 'build', `${basename(project === '.' ? process.cwd() : project)}.wasm`)
  }
  return `${src.replace(/\.ts$/, '')}.wasm`
}
