import { createHash, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { preSharedKey } from '@libp2p/pnet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toPublicKey } from '../../actors/signing.js'
import { showReply } from '../../node/cli/call.js'
import { encodeCallRecords } from '../../node/cli/replay.js'
import { exampleModule, fixtureModule } from '../actors/examples.js'
import { setup } from '../actors/harness.js'
import { type ClusterNode, ProcessCluster, waitFor } from '../integration/cluster.js'
import { runCli } from './cli-run.js'

let cluster: ProcessCluster
let node: ClusterNode
let dir = ''
let counterFile = ''

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'am-cli-cmd-'))
  counterFile = join(dir, 'counter.wasm')
  await writeFile(counterFile, await exampleModule('counter'))
  cluster = new ProcessCluster()
  await cluster.start(1)
  node = cluster.nodes[0]!
}, 180_000)

afterAll(async () => {
  await cluster?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('actormesh ns', () => {
  it('creates, lists (table and --json) and deletes a namespace; a duplicate is refused with exit 3', async () => {
    const created = await runCli(['ns', 'create', 'inventory', '--replicas', '1', '--node', node.url])
    expect(created).toMatchObject({ code: 0, stderr: '' })
    expect(created.stdout).toMatch(/^Created namespace 'inventory': replication factor 1, replicas …\S+\n$/)
    const again = await runCli(['ns', 'create', 'inventory', '--node', node.url])
    expect(again.code).toBe(3)
    expect(again.stderr).toContain(`Node at ${node.url} answered 409`)

    const table = await runCli(['ns', 'list', '--node', node.url])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/^NAME +RF +LEADER +VOTERS +LEARNERS +MODULE\n/)
    expect(table.stdout).toMatch(new RegExp(`\\ninventory +1 +\\S+ +…${node.peer.slice(-8)} +0 +none\\n`))
    const json = await runCli(['ns', 'list', '--json', '--node', node.url])
    const doc = JSON.parse(json.stdout) as { namespaces: Array<{ name: string; voters: string[] }> }
    expect(doc.namespaces).toMatchObject([{ name: 'inventory', voters: [node.peer] }])

    const deleted = await runCli(['ns', 'delete', 'inventory', '--node', node.url])
    expect(deleted).toMatchObject({ code: 0, stdout: "Deleted namespace 'inventory'\n" })
    expect((await runCli(['ns', 'list', '--node', node.url])).stdout).toBe('No namespaces.\n')
    const gone = await runCli(['ns', 'delete', 'inventory', '--node', node.url])
    expect(gone.code).toBe(3)
    expect(gone.stderr).toContain('answered 404')
  }, 120_000)

  it('exits 2 on a missing name or an unknown subcommand, 1 when no node answers', async () => {
    expect((await runCli(['ns', 'create'])).code).toBe(2)
    const unknown = await runCli(['ns', 'rename', 'x'])
    expect([unknown.code, unknown.stderr.split('\n')[0]]).toEqual([
      2,
      "actormesh: Unknown ns command 'rename'",
    ])
    const port = await deadPort()
    const dead = await runCli(['ns', 'list', '--node', `http://127.0.0.1:${port}`])
    expect(dead.code).toBe(1)
    expect(dead.stderr).toBe(
      `actormesh: Cannot reach http://127.0.0.1:${port} (ECONNREFUSED): is a node running?\n`,
    )
  }, 60_000)
})

describe('actormesh deploy and call', () => {
  it('deploys the counter and calls it with payloads, files, keys and reads; takes --node from env and config', async () => {
    expect((await runCli(['ns', 'create', 'counters', '--replicas', '1', '--node', node.url])).code).toBe(0)
    const deployed = await runCli(['deploy', 'counters', counterFile, '--node', node.url])
    const hash = createHash('sha256')
      .update(await readFile(counterFile))
      .digest('hex')
    expect(deployed).toMatchObject({
      code: 0,
      stdout: `Deployed ${counterFile} to 'counters': version 1, sha256 ${hash}\n`,
    })
    const call = (args: string[], env: Record<string, string> = { ACTORMESH_NODE: node.url }) =>
      runCli(['call', 'counters', ...args], { env })
    expect(await call(['c1', 'increment', '5'])).toMatchObject({ code: 0, stdout: '5\n', stderr: '' })
    const payload = join(dir, 'two.txt')
    await writeFile(payload, '2')
    expect((await call(['c1', 'increment', '--data', `@${payload}`])).stdout).toBe('7\n')
    expect(
      (
        await runCli(['call', 'counters', 'c1', 'increment', '--data', '@-'], {
          env: { ACTORMESH_NODE: node.url },
          stdin: '1',
        })
      ).stdout,
    ).toBe('8\n')
    const config = join(dir, 'cli.json')
    await writeFile(config, JSON.stringify({ node: node.url }))
    // The config file's node is used when neither a flag nor the environment gives one.
    expect((await call(['c1', 'get', '--readonly', '--config', config], {})).stdout).toBe('8\n')
    // The environment wins over the file: a dead node there fails the call.
    const port = await deadPort()
    const envWins = await call(['c1', 'get', '--config', config], {
      ACTORMESH_NODE: `http://127.0.0.1:${port}`,
    })
    expect([envWins.code, envWins.stderr]).toEqual([
      1,
      `actormesh: Cannot reach http://127.0.0.1:${port} (ECONNREFUSED): is a node running?\n`,
    ])

    const first = await call(['c2', 'increment', '3', '--key', 'k-1'])
    const retry = await call(['c2', 'increment', '3', '--key', 'k-1'])
    expect([first.stdout, retry.stdout]).toEqual(['3\n', '3\n'])
    expect(retry.stderr).toBe("note: replayed — the first reply to idempotency key 'k-1'\n")
    expect((await call(['c2', 'get', '--stale'])).stdout).toBe('3\n')

    const missing = await call(['c1', 'no_such_method'])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toContain('answered 404 to POST /v1/ns/counters/actors/c1/no_such_method')
    expect((await call(['c1', 'increment', '1', '--data', '2'])).code).toBe(2)
    expect((await call(['c1', 'increment', '--json', '{bad'])).code).toBe(2)
    expect((await runCli(['call', 'nowhere', 'a', 'get', '--node', node.url])).code).toBe(3)
  }, 180_000)

  it('sends a JSON payload as application/json (the chat example takes a post as JSON)', async () => {
    expect((await runCli(['ns', 'create', 'rooms', '--replicas', '1', '--node', node.url])).code).toBe(0)
    const chat = join(dir, 'chat.wasm')
    await writeFile(chat, await exampleModule('chat'))
    expect((await runCli(['deploy', 'rooms', chat, '--node', node.url])).code).toBe(0)
    const env = { ACTORMESH_NODE: node.url }
    expect((await runCli(['call', 'rooms', 'lobby', 'join', 'ann'], { env })).code).toBe(0)
    const post = await runCli(['call', 'rooms', 'lobby', 'post', '--json', '{"from":"ann","text":"hi"}'], {
      env,
    })
    expect(post.code).toBe(0)
    const history = await runCli(['call', 'rooms', 'lobby', 'history', '--readonly'], { env })
    expect(history.stdout).toContain('"text":"hi"')
  }, 120_000)

  it('refuses a file that is not WebAssembly and an unknown capability before asking the node (exit 2)', async () => {
    const notWasm = join(dir, 'not.wasm')
    await writeFile(notWasm, 'hello')
    const bad = await runCli(['deploy', 'counters', notWasm, '--node', node.url])
    expect([bad.code, bad.stderr.split('\n')[0]]).toEqual([
      2,
      `actormesh: Cannot deploy '${notWasm}': not a WebAssembly module (build one with actormesh build)`,
    ])
    const caps = await runCli(['deploy', 'counters', counterFile, '--capabilities', 'state_get,teleport'])
    expect(caps.code).toBe(2)
    expect(caps.stderr).toContain("Invalid capability 'teleport'")
  }, 60_000)
})

/** A loopback port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((r) => server.close(() => r()))
  return port
}

/** A loopback HTTP server that records requests and answers each with `answer`. */
async function recorder(
  answer: (req: IncomingMessage) => [number, unknown],
): Promise<{ server: Server; url: string; seen: Array<{ req: IncomingMessage; body: Buffer }> }> {
  const seen: Array<{ req: IncomingMessage; body: Buffer }> = []
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    seen.push({ req, body: Buffer.concat(chunks) })
    const [status, body] = answer(req)
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

describe('what goes over the wire', () => {
  it('sends --token as a bearer header and a --sign signature that verifies with the keygen public key', async () => {
    const key = join(dir, 'signing.pem')
    const made = await runCli(['keygen', '--out', key])
    expect(made.code).toBe(0)
    expect((await stat(key)).mode & 0o777).toBe(0o600)
    const raw = /public key \(raw, base64\): (\S+)/.exec(made.stdout)![1]!
    const pub = createPublicKey(await readFile(`${key}.pub`, 'utf8'))
    expect(toPublicKey(Buffer.from(raw, 'base64')).export({ format: 'jwk' })).toEqual(
      pub.export({ format: 'jwk' }),
    )

    const fake = await recorder(() => [200, { namespace: 'x', version: 4, hash: 'h' }])
    try {
      const out = await runCli(['deploy', 'x', counterFile, '--sign', key, '--capabilities', 'state_get'], {
        env: { ACTORMESH_NODE: fake.url, ACTORMESH_TOKEN: 's3cret' },
      })
      expect(out.code).toBe(0)
      expect(out.stdout).toContain(`Signed with Ed25519 public key ${raw}`)
      const { req, body } = fake.seen[0]!
      expect([req.method, req.url]).toEqual(['PUT', '/v1/ns/x/module?capabilities=state_get'])
      expect(req.headers.authorization).toBe('Bearer s3cret')
      const signature = Buffer.from(String(req.headers['x-actormesh-signature']), 'base64')
      const { verifyModuleSignature } = await import('../../actors/signing.js')
      expect(() => verifyModuleSignature('x', new Uint8Array(body), signature, [pub])).not.toThrow()
      expect(() => verifyModuleSignature('x', new Uint8Array([...body, 0]), signature, [pub])).toThrow()
    } finally {
      fake.server.close()
    }
  }, 60_000)

  it('falls back to the /v1/namespaces routes on a node without /v1/ns, and maps 403 to exit 3', async () => {
    const fake = await recorder((req) =>
      req.url!.startsWith('/v1/ns/')
        ? [404, { code: 'ACTORMESH_NOT_FOUND', message: 'No route' }]
        : [403, { code: 'ACTORMESH_FORBIDDEN', message: 'token scope' }],
    )
    try {
      const out = await runCli(['call', 'a', 'b', 'c', '--node', fake.url])
      expect(fake.seen.map((s) => s.req.url)).toEqual(['/v1/ns/a/actors/b/c', '/v1/namespaces/a/actors/b/c'])
      expect(out.code).toBe(3)
      expect(out.stderr).toBe(
        `actormesh: Node at ${fake.url} answered 403 to POST /v1/namespaces/a/actors/b/c: token scope\n`,
      )
    } finally {
      fake.server.close()
    }
  }, 60_000)

  it('shows a reply as text when it is UTF-8, else as base64', () => {
    expect(showReply(new TextEncoder().encode('héllo'))).toEqual({ text: 'héllo', base64: false })
    expect(showReply(new Uint8Array([0xff, 0x00, 0x80]))).toEqual({ text: '/wCA', base64: true })
  })
})

describe('actormesh keygen --cluster-key, build and replay', () => {
  it('writes a cluster key @libp2p/pnet accepts, and never overwrites a key', async () => {
    const file = join(dir, 'cluster.key')
    expect((await runCli(['keygen', '--cluster-key', '--out', file])).code).toBe(0)
    // The protector decodes its key when it is made (as a node does at start).
    const protector = (psk: Uint8Array) => preSharedKey({ psk })()
    expect(() => protector(new Uint8Array(Buffer.from('not a key')))).toThrow()
    expect(() => protector(new Uint8Array(readFileSync(file)))).not.toThrow()
    const again = await runCli(['keygen', '--cluster-key', '--out', file])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain('the file exists')
  }, 60_000)

  it('builds an actor into the same module the tests build', async () => {
    const out = join(dir, 'built', 'counter.wasm')
    const built = await runCli(['build', 'examples/counter/assembly/index.ts', '-o', out])
    expect(built.code).toBe(0)
    expect(built.stdout).toMatch(
      new RegExp(`^Built ${out}: [\\d.]+ kB, sha256 [0-9a-f]{64}, in [\\d.]+ s\\n$`),
    )
    expect(new Uint8Array(await readFile(out))).toEqual(await exampleModule('counter'))
    const broken = await runCli(['build', 'examples/nope.ts'])
    expect([broken.code, broken.stderr.split('\n')[0]]).toEqual([
      2,
      "actormesh: Cannot build 'examples/nope.ts': no such file",
    ])
  }, 180_000)

  it('replays recorded calls: no difference with the recording module, the differences with another', async () => {
    const { runtime, callText } = setup()
    await runtime.deploy('c', await exampleModule('counter'))
    await callText('c', 'a', 'increment', '3')
    await callText('c', 'a', 'increment')
    const records = join(dir, 'records.json')
    await writeFile(records, encodeCallRecords(runtime.exportCalls('c', 'a')))
    const v2 = join(dir, 'counter-v2.wasm')
    await writeFile(v2, await fixtureModule('counter-v2'))

    const same = await runCli(['replay', records, '--module', counterFile])
    expect(same.code).toBe(0)
    expect(same.stdout).toMatch(
      /c\/a\.increment .*\n {2}same outcome\n.*\n {2}same outcome\n2 calls replayed, 0 differ\n$/,
    )
    const other = await runCli(['replay', records, '--module', v2, '--json'])
    expect(other.code).toBe(1)
    const doc = JSON.parse(other.stdout) as Array<{ differences: string[] }>
    expect(doc).toHaveLength(2)
    // counter-v2 increments by 2 without a payload: the second call's reply was 4, is now 5.
    expect(doc[1]!.differences).toContain('reply: recorded 0x34, replayed 0x35')
    const bad = join(dir, 'bad-records.json')
    await writeFile(bad, '[{"namespace": "c"}]')
    const refused = await runCli(['replay', bad, '--module', counterFile])
    expect([refused.code, refused.stderr.split('\n')[0]]).toEqual([
      2,
      `actormesh: Cannot read records '${bad}': record 0: 'actor' is missing or malformed`,
    ])
  }, 120_000)
})

describe('actormesh status', () => {
  it('reads the node from ACTORMESH_NODE', async () => {
    const out = await waitFor(
      async () => {
        const r = await runCli(['status'], { env: { ACTORMESH_NODE: node.url } })
        return r.code === 0 ? r : undefined
      },
      () => 'status to answer',
      60_000,
    )
    expect(out.stdout).toContain(`Node ${node.peer} at ${node.url}`)
  }, 90_000)
})
