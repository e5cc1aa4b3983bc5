import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../integration/cluster.js'
import { cliEnv, cliPath, nodeBin, root } from './cli-run.js'

let demo: ChildProcess | undefined
const pids: number[] = []

/** Whether a process with this pid still exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as { code?: string }).code !== 'ESRCH'
  }
}

afterEach(() => {
  if (demo?.exitCode === null) demo.kill('SIGKILL')
  for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL')
})

async function post(url: string): Promise<string> {
  return waitFor(
    async () => {
      const res = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(20_000) })
      if (res.status === 503) return undefined
      expect(res.status).toBe(200)
      return res.text()
    },
    () => `POST ${url} to succeed`,
    60_000,
  )
}

describe('actormesh demo', () => {
  it('runs three nodes with the examples on free ports, and Ctrl-C stops them and removes the data', async () => {
    demo = spawn(nodeBin, [cliPath, 'demo', '--base-port', '0'], {
      cwd: root,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    demo.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    demo.stderr!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const exited = new Promise<number | null>((r) => demo!.once('exit', (code) => r(code)))
    await waitFor(
      () => out.includes('\nTry it:\n') && out.includes('kill the leader'),
      () => `the demo's ready message; output so far:\n${out}`,
      300_000,
      () => demo!.exitCode !== null,
    )
    expect(out).toContain('ActorMesh demo ready: 3 nodes, namespaces chat and counter.')
    const nodes = [...out.matchAll(/ {2}node (\d) {2}(\S+) .* pid (\d+) /g)].map((m) => ({
      url: m[2]!,
      pid: Number(m[3]),
    }))
    expect(nodes).toHaveLength(3)
    pids.push(...nodes.map((n) => n.pid))
    const data = /\n {2}data {5}(\S+) \(removed on exit\)/.exec(out)![1]!
    expect(existsSync(data)).toBe(true)
    expect(out).toContain(`chat page: ${nodes[0]!.url}/chat/`)

    // The printed curl line works, through the first node and through the second.
    const increment = /curl -X POST (\S+\/v1\/ns\/counter\/actors\/c1\/increment)/.exec(out)![1]!
    expect(increment.startsWith(nodes[0]!.url)).toBe(true)
    expect(await post(increment)).toBe('1')
    expect(await post(increment.replace(nodes[0]!.url, nodes[1]!.url))).toBe('2')
    expect(await post(`${nodes[2]!.url}/v1/ns/counter/actors/c1/get`)).toBe('2')

    demo.kill('SIGINT')
    expect(await exited).toBe(0)
    expect(out).toContain(`Stopped; removed ${data}`)
    for (const n of nodes) expect(alive(n.pid)).toBe(false)
    expect(existsSync(data)).toBe(false)
  }, 420_000)
})
