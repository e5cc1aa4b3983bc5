/**
 * Runs `bin/actormesh.js` as a child process to its end, as a user would, for the CLI tests.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

export const root = join(import.meta.dirname, '..', '..')
export const nodeBin = join(root, 'node_modules', '.bin', 'node')
export const cliPath = join(root, 'bin', 'actormesh.js')

/** What a finished CLI run printed and how it exited. */
export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** The environment of a CLI run: this process's, without any ACTORMESH_* variable, plus `env`. */
export function cliEnv(env: Record<string, string> = {}): Record<string, string> {
  const base = Object.entries(process.env).filter(([k, v]) => !k.startsWith('ACTORMESH_') && v !== undefined)
  return { ...(Object.fromEntries(base) as Record<string, string>), ...env }
}

/** Runs the CLI with `args` (and `stdin` piped in when given) and resolves when it exits. */
export async function runCli(
  args: string[],
  options: {
    env?: Record<string, string>
    stdin?: string
    cwd?: string
    /** Told the child process as soon as it exists (e.g. to kill it when a test times out). */
    spawned?: (proc: ChildProcess) => void
  } = {},
): Promise<CliRun> {
  const proc: ChildProcess = spawn(nodeBin, [cliPath, ...args], {
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: cliEnv(options.env),
    cwd: options.cwd ?? root,
  })
  options.spawned?.(proc)
  if (options.stdin !== undefined) proc.stdin!.end(options.stdin)
  let stdout = ''
  let stderr = ''
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const code = await new Promise<number | null>((r) => proc.once('close', (c) => r(c)))
  return { code, stdout, stderr }
}
