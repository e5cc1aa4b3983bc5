/**
 * The build command: compiles an AssemblyScript actor to a `.wasm` module with the
 * `assemblyscript` compiler, the SDK on the path and the options ABI v1 needs (stub runtime:
 * the host resets the instance before each call, so a bump allocator never needs to free;
 * aborts routed to the SDK so their message reaches the caller).
 *
 * Script use: `node_modules/.bin/node --import tsx actors/build.ts <source.ts> <out.wasm>`
 */
import { mkdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The slice of the compiler's API this file uses. The compiler is imported by a computed
 * specifier on purpose: its own typings declare a global `console` namespace (for AssemblyScript
 * code) that would shadow Node's `console` in every file of the project.
 */
interface AscApi {
  main(
    argv: string[],
    options: {
      stdout: { write(chunk: string | Uint8Array): boolean }
      stderr: { write(chunk: string | Uint8Array): boolean }
    },
  ): Promise<{ error: Error | null }>
}

const ascSpecifier = 'assemblyscript/asc'
let ascModule: Promise<AscApi> | undefined
function loadAsc(): Promise<AscApi> {
  ascModule ??= import(ascSpecifier).then((m: { default: AscApi }) => m.default)
  return ascModule
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** The SDK's path inside the repository, as the compiler names it (no extension). */
const sdkInternal = 'actors/sdk/assembly/index'

/** Build failed: the compiler's diagnostics are in the message. */
export class BuildError extends Error {
  override name = 'BuildError'
}

/** Compiles `sourcePath` (an actor file) to `outPath`. Throws `BuildError` with the diagnostics. */
export async function buildActor(
  sourcePath: string,
  outPath: string,
  options: { optimize?: boolean; signal?: AbortSignal } = {},
): Promise<void> {
  options.signal?.throwIfAborted()
  const source = relative(root, resolve(sourcePath))
  if (source.startsWith('..'))
    throw new RangeError(`Bad source '${sourcePath}': must be inside the repository`)
  mkdirSync(dirname(resolve(outPath)), { recursive: true })
  let diagnostics = ''
  const asc = await loadAsc()
  const result = await asc.main(
    [
      source,
      '--baseDir',
      root,
      '--outFile',
      resolve(outPath),
      '--runtime',
      'stub',
      '--use',
      `abort=${sdkInternal}/amAbort`,
      ...(options.optimize === false ? [] : ['--optimizeLevel', '3', '--shrinkLevel', '0']),
    ],
    {
      stdout: { write: () => true },
      stderr: {
        write: (chunk: string | Uint8Array) => {
          diagnostics += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk)
          return true
        },
      },
    },
  )
  if (result.error)
    throw new BuildError(`Cannot build actor '${sourcePath}': ${result.error.message}\n${diagnostics}`)
}

/** Where the SDK lives (for tools that print it). */
export const sdkPath = join(root, 'actors', 'sdk', 'assembly', 'index.ts')

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [src, out] = process.argv.slice(2)
  if (!src || !out) {
    process.stderr.write('usage: node --import tsx actors/build.ts <source.ts> <out.wasm>\n')
    process.exit(2)
  }
  await buildActor(src, out)
  process.stdout.write(`built ${out}\n`)
}
