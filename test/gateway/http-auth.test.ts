/**
 * Bearer tokens on real node processes (loopback, with `--admin-token-file`): 401 without or with
 * an unknown token, 403 outside a token's scope, tokens made on one node honoured on another once
 * the catalog applied them, deleted tokens refused, WebSocket upgrades checked alike; and a node
 * listening beyond loopback without a token file refuses to start (exit 2) before it listens.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { exampleModule } from '../actors/examples.js'
import { waitFor } from '../integration/cluster.js'
import { runCli } from '../node/cli-run.js'

const root = join(import.meta.dirname, '..', '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
const cli = join(root, 'bin', 'actormesh.js')
const ADMIN = 'test-admin-token-0123456789abcdefghijklmnop'

interface AuthNode {
  url: string
  addr: string
  proc: ChildProcess
}

const procs: ChildProcess[] = []
const dirs: string[] = []

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r))
      p.kill('SIGKILL')
      await exited
    }
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'am-auth-'))
  dirs.push(dir)
  return dir
}

function run(args: string[]): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(nodeBin, [cli, 'start', '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  procs.push(proc)
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  return { proc, output: () => out, exited: new Promise((r) => proc.once('exit', (code) => r(code))) }
}

/** Starts a loopback node with the admin token file; its peer address comes from /v1/members. */
async function startNode(dataDir: string, tokenFile: string, seeds: string[] = []): Promise<AuthNode> {
  const args = ['--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--http', '127.0.0.1:0']
  for (const s of seeds) args.push('--seed', s)
  const { proc, output } = run([...args, '--admin-token-file', tokenFile])
  const url = await waitFor(
    () => /health:\s+curl (\S+)\/healthz/.exec(output())?.[1],
    () => `node on ${dataDir} to start; output:\n${output()}`,
    30_000,
    () => proc.exitCode !== null,
  )
  const members = (await (await req({ url } as AuthNode, 'GET', '/v1/members', ADMIN)).json()) as {
    self: { addrs: string[] }
  }
  return { url, addr: members.self.addrs[0]!, proc }
}

function req(node: AuthNode, method: string, path: string, token?: string, body?: string | Uint8Array) {
  return fetch(`${node.url}${path}`, {
    method,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(30_000),
  })
}

/** Status and code of an answer. */
async function outcome(res: Response): Promise<[number, string | undefined]> {
  const text = await res.text()
  return [res.status, res.status === 200 || res.status === 201 ? undefined : JSON.parse(text).code]
}

/** Repeats a request until its status is not `retryOn`; returns the first other answer. */
function until(what: string, op: () => Promise<Response>, retryOn = [503]): Promise<Response> {
  return waitFor(
    async () => {
      const res = await op()
      if (!retryOn.includes(res.status)) return res
      await res.body?.cancel()
      return undefined
    },
    () => what,
    60_000,
  )
}

/** The HTTP status a WebSocket upgrade is answered with (101 when it opened). */
function upgrade(node: AuthNode, path: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${node.url.replace(/^http/, 'ws')}${path}`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    })
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      ws.terminate()
    })
    ws.once('open', () => {
      resolve(101)
      ws.close()
    })
    ws.once('error', (e) => reject(e))
  })
}

describe('HTTP access with bearer tokens', () => {
  it('refuses to start beyond loopback without an admin token file (exit 2, nothing listens)', async () => {
    const dir = await tempDir()
    for (const args of [
      ['--http', '0.0.0.0:0', '--listen', '/ip4/127.0.0.1/tcp/0'],
      ['--http', '127.0.0.1:0', '--listen', '/ip4/0.0.0.0/tcp/0'],
    ]) {
      const data = join(dir, 'never')
      const started = run(['--data', data, ...args])
      expect(await started.exited).toBe(2)
      expect(started.output()).toContain('--admin-token-file')
      expect(started.output()).not.toContain('is up')
      expect(existsSync(data)).toBe(false)
    }
  }, 60_000)

  it('answers 401 and 403 as the token says; a token made on one node works on the other', async () => {
    const dir = await tempDir()
    const tokenFile = join(dir, 'admin-token')
    await writeFile(tokenFile, `${ADMIN}\n`)
    const a = await startNode(join(dir, 'a'), tokenFile)
    const b = await startNode(join(dir, 'b'), tokenFile, [a.addr])

    // Open routes need no token; the rest need one from the start.
    expect((await req(a, 'GET', '/healthz')).status).toBe(200)
    expect((await req(a, 'GET', '/metrics')).status).toBe(200)
    for (const n of [a, b]) await until('ready', () => req(n, 'GET', '/readyz'))
    const anonymous = await req(a, 'GET', '/v1/status')
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer')
    expect(await outcome(anonymous)).toEqual([401, 'ACTORMESH_UNAUTHENTICATED'])
    expect(await outcome(await req(a, 'GET', '/v1/status', 'not-a-token'))).toEqual([
      401,
      'ACTORMESH_UNAUTHENTICATED',
    ])
    expect((await req(a, 'GET', '/v1/status', ADMIN)).status).toBe(200)
    // The file's token reaches the catalog as bootstrap-admin; listings never show hashes.
    await waitFor(
      async () => {
        const text = await (await req(b, 'GET', '/v1/tokens', ADMIN)).text()
        return text.includes('"bootstrap-admin"') && !text.includes('hash')
      },
      () => 'bootstrap-admin in the catalog',
    )

    for (const name of ['alpha', 'beta']) {
      const body = JSON.stringify({ name, replicationFactor: 1 })
      expect((await until(`create ${name}`, () => req(a, 'POST', '/v1/ns', ADMIN, body))).status).toBe(201)
    }
    const wasm = await exampleModule('counter')
    // 404 while a's catalog has not applied the create yet (a may not lead _system).
    const deployed = await until(
      'deploy',
      () => req(a, 'PUT', '/v1/ns/alpha/module', ADMIN, wasm),
      [503, 404],
    )
    expect(deployed.status).toBe(200)
    const made = await req(a, 'POST', '/v1/tokens', ADMIN, JSON.stringify({ namespace: 'alpha' }))
    expect(made.status).toBe(201)
    const { id, token } = (await made.json()) as { id: string; token: string }

    // Node b honours the token once its catalog has applied it.
    const called = await until(
      'a call with the alpha token on b',
      () => req(b, 'POST', '/v1/ns/alpha/actors/c/increment', token, '3'),
      [401, 503],
    )
    expect([called.status, await called.text()]).toEqual([200, '3'])
    expect(await outcome(await req(b, 'POST', '/v1/ns/alpha/actors/c/get'))).toEqual([
      401,
      'ACTORMESH_UNAUTHENTICATED',
    ])
    // A caller token is for its namespace's calls only.
    const forbidden: Array<[string, string, string | Uint8Array | undefined]> = [
      ['POST', '/v1/ns', JSON.stringify({ name: 'gamma' })],
      ['POST', '/v1/ns/beta/actors/c/get', undefined],
      ['PUT', '/v1/ns/alpha/module', wasm],
      ['DELETE', '/v1/ns/alpha', undefined],
      ['GET', '/v1/tokens', undefined],
      ['GET', '/v1/admin/catalog', undefined],
      ['GET', '/v1/members', undefined],
    ]
    for (const [method, path, body] of forbidden) {
      expect([path, ...(await outcome(await req(b, method, path, token, body)))]).toEqual([
        path,
        403,
        'ACTORMESH_FORBIDDEN',
      ])
    }

    // WebSocket upgrades: the same check.
    await waitFor(
      async () => (await upgrade(a, '/v1/ns/alpha/actors/c/ws', token)) === 101,
      () => 'a WebSocket on a with the alpha token',
    )
    expect(await upgrade(a, '/v1/ns/alpha/actors/c/ws')).toBe(401)
    expect(await upgrade(a, '/v1/ns/beta/actors/c/ws', token)).toBe(403)

    // Deleted on a: refused on b once applied there.
    expect((await req(a, 'DELETE', `/v1/tokens/${id}`, ADMIN)).status).toBe(200)
    expect(await outcome(await req(a, 'DELETE', `/v1/tokens/${id}`, ADMIN))).toEqual([
      404,
      'ACTORMESH_TOKEN_NOT_FOUND',
    ])
    await waitFor(
      async () => (await req(b, 'POST', '/v1/ns/alpha/actors/c/get', token)).status === 401,
      () => 'the deleted token to be refused on b',
    )
    expect(a.proc.exitCode).toBeNull()
  }, 180_000)

  it('lets actormesh snapshot through with --token or ACTORMESH_TOKEN, and not without', async () => {
    const dir = await tempDir()
    const tokenFile = join(dir, 'admin-token')
    await writeFile(tokenFile, `${ADMIN}\n`)
    const a = await startNode(join(dir, 'a'), tokenFile)
    await until('ready', () => req(a, 'GET', '/readyz'))
    const without = await runCli(['snapshot', '--node', a.url, '--out', join(dir, 'no.amsnap')])
    expect(without.code).not.toBe(0)
    expect(without.stderr).toContain('401')
    expect(existsSync(join(dir, 'no.amsnap'))).toBe(false)
    const flag = await runCli([
      'snapshot',
      '--node',
      a.url,
      '--out',
      join(dir, 'flag.amsnap'),
      '--token',
      ADMIN,
    ])
    expect(flag.code, flag.stderr).toBe(0)
    const env = await runCli(['snapshot', '--node', a.url, '--out', join(dir, 'env.amsnap')], {
      env: { ACTORMESH_TOKEN: ADMIN },
    })
    expect(env.code, env.stderr).toBe(0)
  }, 120_000)
})
