import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { type CliRun, cliPath, nodeBin, runCli as runCliProcess } from './cli-run.js'

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
      cliPath,
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
): Promise<{ self: { peer: string; addrs: string[] }; members: Array<{ peer: string; state: string }> }> {
  const res = await fetch(`${url}/v1/members`)
  return (await res.json()) as never
}

/** Runs `bin/actormesh.js` to its end (killed by `afterEach` if the test ends first). */
const runCli = (args: string[]): Promise<CliRun> => runCliProcess(args, { spawned: (p) => procs.push(p) })

/** A loopback port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const { port } = server.address() as { port: number }
  await new Promise<void>((r) => server.close(() => r()))
  return port
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
    const proc = spawn(nodeBin, [cliPath, 'start', '--bogus'], {
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

describe('actormesh status', () => {
  it("prints a running node's peer id, its namespaces with leader and health, and --json", async () => {
    const a = await startNode([])
    const peer = (await members(a.url)).self.peer
    const created = await fetch(`${a.url}/v1/namespaces`, {
      method: 'POST',
      body: JSON.stringify({ name: 'inventory', replicationFactor: 1 }),
    })
    expect(created.status).toBe(201)
    // The namespace shows with a leader once its single replica is hosted and has elected itself.
    const deadline = Date.now() + 30_000
    let out = await runCli(['status', '--url', a.url])
    while (!/inventory .* ok\n/.test(out.stdout)) {
      if (Date.now() > deadline)
        throw new Error(`namespace never showed healthy:\n${out.stdout}${out.stderr}`)
      await new Promise((r) => setTimeout(r, 100))
      out = await runCli(['status', '--url', a.url])
    }
    expect(out.code).toBe(0)
    expect(out.stdout).toContain(`Node ${peer} at ${a.url}`)
    expect(out.stdout).toContain('(this node)')
    expect(out.stdout).toMatch(new RegExp(`inventory +1 +…${peer.slice(-8)} +1 +0 +none +ok`))

    const json = await runCli(['status', '--http', a.url.replace('http://', ''), '--json'])
    expect(json.code).toBe(0)
    const doc = JSON.parse(json.stdout) as {
      status: { peer: string }
      namespaces: { namespaces: Array<{ name: string; leader: string }> }
    }
    expect(doc.status.peer).toBe(peer)
    expect(doc.namespaces.namespaces).toMatchObject([{ name: 'inventory', leader: peer }])
  })

  it('exits 1 with a clear message when no node answers', async () => {
    const port = await deadPort()
    const out = await runCli(['status', '--url', `http://127.0.0.1:${port}`])
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toBe(
      `actormesh: Cannot reach http://127.0.0.1:${port} (ECONNREFUSED): is a node running?\n`,
    )
  })

  it('exits 2 when given both --http and --url', async () => {
    const out = await runCli(['status', '--http', '127.0.0.1:1', '--url', 'http://127.0.0.1:1'])
    expect(out.code).toBe(2)
    expect(out.stderr).toContain('Give --http or --url, not both')
  })
})
