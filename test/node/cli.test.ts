import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
const procs: ChildProcess[] = []
const dirs: string[] = []

interface Started {
  proc: ChildProcess
  url: string
  exited: Promise<number | null>
}

/** Starts `actormesh start` as a child process on free ports and waits for its gateway URL. */
async function startNode(args: string[]): Promise<Started> {
  const dir = await mkdtemp(join(tmpdir(), 'am-cli-'))
  dirs.push(dir)
  const proc = spawn(
    nodeBin,
    [
      join(root, 'bin', 'actormesh.js'),
      'start',
      '--data',
      dir,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--http',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  procs.push(proc)
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  let out = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start: ${out}`)), 30_000)
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /health:\s+curl (\S+)\/healthz/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    })
    proc.stderr!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    proc.once('exit', (code) => reject(new Error(`node exited with ${code}: ${out}`)))
  })
  return { proc, url, exited }
}

async function members(
  url: string,
): Promise<{ self: { addrs: string[] }; members: Array<{ peer: string; state: string }> }> {
  const res = await fetch(`${url}/v1/members`)
  return (await res.json()) as never
}

afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL')
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

describe('actormesh start', () => {
  it('runs nodes that find each other from a seed and exit 0 on SIGTERM', async () => {
    const a = await startNode([])
    expect(await (await fetch(`${a.url}/healthz`)).json()).toMatchObject({ ok: true })
    const seed = (await members(a.url)).self.addrs[0]!
    const b = await startNode(['--seed', seed])
    const deadline = Date.now() + 30_000
    const aliveCount = async (url: string) =>
      (await members(url)).members.filter((m) => m.state === 'alive').length
    while ((await aliveCount(a.url)) !== 1 || (await aliveCount(b.url)) !== 1) {
      if (Date.now() > deadline) throw new Error('nodes did not see each other')
      await new Promise((r) => setTimeout(r, 50))
    }
    b.proc.kill('SIGTERM')
    a.proc.kill('SIGINT')
    expect(await b.exited).toBe(0)
    expect(await a.exited).toBe(0)
  })

  it('exits 2 with usage on an unknown flag', async () => {
    const proc = spawn(nodeBin, [join(root, 'bin', 'actormesh.js'), 'start', '--bogus'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    procs.push(proc)
    let err = ''
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString()
    })
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)))
    expect(code).toBe(2)
    expect(err).toContain("Unknown option '--bogus'")
  })
})
