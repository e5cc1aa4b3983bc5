import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signModule } from '../../actors/index.js'
import { exampleModule } from '../actors/examples.js'
import { call, createNamespace } from '../integration/calls.js'
import { ProcessCluster, waitFor } from '../integration/cluster.js'

const cluster = new ProcessCluster()
const trusted = generateKeyPairSync('ed25519')
const stranger = generateKeyPairSync('ed25519')
let dir = ''

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'am-deploy-key-'))
  const pub = join(dir, 'deploy.pub')
  await writeFile(pub, trusted.publicKey.export({ type: 'spki', format: 'pem' }))
  await cluster.start(1, ['--deploy-key', pub])
  await createNamespace(cluster.nodes[0]!, 'signed', 1)
}, 120_000)

afterAll(async () => {
  await cluster.stop()
  await rm(dir, { recursive: true, force: true })
})

/** A deploy, retried while the new namespace has no leader yet (503). */
async function put(bytes: Uint8Array, signature?: Uint8Array): Promise<{ status: number; code?: string }> {
  return waitFor(
    async () => {
      const answer = await putOnce(bytes, signature)
      return answer.status === 503 ? undefined : answer
    },
    () => 'the namespace to have a leader',
  )
}

async function putOnce(
  bytes: Uint8Array,
  signature?: Uint8Array,
): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${cluster.nodes[0]!.url}/v1/ns/signed/module`, {
    method: 'PUT',
    body: bytes,
    headers: signature ? { 'x-actormesh-signature': Buffer.from(signature).toString('base64') } : {},
  })
  const body = (await res.json()) as { code?: string }
  return { status: res.status, ...(body.code ? { code: body.code } : {}) }
}

describe('a node started with --deploy-key', () => {
  it('accepts only modules signed by that key', async () => {
    const counter = await exampleModule('counter')
    expect(await put(counter)).toEqual({ status: 400, code: 'ACTORMESH_SIGNATURE_INVALID' })
    expect(await put(counter, signModule(counter, stranger.privateKey))).toEqual({
      status: 400,
      code: 'ACTORMESH_SIGNATURE_INVALID',
    })
    // A signature of other bytes does not carry over.
    const other = await exampleModule('register')
    expect(await put(counter, signModule(other, trusted.privateKey))).toEqual({
      status: 400,
      code: 'ACTORMESH_SIGNATURE_INVALID',
    })
    expect((await put(counter, signModule(counter, trusted.privateKey))).status).toBe(200)
    expect((await call(cluster.nodes[0]!, 'signed', 'c1', 'increment')).body).toBe('1')
  })

  it('refuses a signature header that is not base64', async () => {
    const res = await fetch(`${cluster.nodes[0]!.url}/v1/ns/signed/module`, {
      method: 'PUT',
      body: new Uint8Array([0, 97, 115, 109]),
      headers: { 'x-actormesh-signature': 'not base64!' },
    })
    expect(res.status).toBe(400)
  })
})
