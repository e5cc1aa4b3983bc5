import { generateKeyPairSync } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  CapabilityDeniedError,
  ModuleInvalidError,
  SignatureInvalidError,
  signModule,
} from '../../actors/index.js'
import { exampleModule } from './examples.js'
import { setup } from './harness.js'
import { buildModule, i32, sleb } from './wasm-builder.js'

let counter: Uint8Array
beforeAll(async () => {
  counter = await exampleModule('counter')
})

describe('capabilities', () => {
  it('refuse a module that imports an ungranted function, naming the import', async () => {
    const { runtime } = setup()
    const err = (await runtime
      .deploy('c', counter, { capabilities: ['state_get', 'state_set'] })
      .catch((e: unknown) => e)) as CapabilityDeniedError
    expect(err).toBeInstanceOf(CapabilityDeniedError)
    expect(err.importName).toBe('actormesh.alarm_set')
    expect(err.message).toContain("'actormesh.alarm_set'")
  })

  it('accept the same module when every import it uses is granted', async () => {
    const { runtime, callText } = setup()
    await runtime.deploy('c', counter, { capabilities: ['state_get', 'state_set', 'alarm_set'] })
    expect(await callText('c', 'a', 'increment')).toBe('1')
  })

  it('refuse an import outside ABI v1 (such as env.abort)', async () => {
    const { runtime } = setup()
    const module = buildModule({
      types: [[[i32, i32, i32, i32], []]],
      imports: [{ module: 'env', name: 'abort', type: 0 }],
      funcs: [],
      globals: [{ type: i32, mutable: false, init: [0x41, ...sleb(1)] }],
      exports: [],
    })
    await expect(runtime.deploy('c', module)).rejects.toMatchObject({
      code: 'ACTORMESH_CAPABILITY_DENIED',
      importName: 'env.abort',
    })
  })

  it('are checked again when a cached module is deployed to a stricter namespace', async () => {
    const { runtime } = setup()
    await runtime.deploy('open', counter)
    await expect(runtime.deploy('strict', counter, { capabilities: ['state_get'] })).rejects.toBeInstanceOf(
      CapabilityDeniedError,
    )
    expect(runtime.stats().compiledModules).toBe(1)
  })
})

describe('signed modules', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const other = generateKeyPairSync('ed25519')

  it('deploy when signed by an accepted key', async () => {
    const { runtime } = setup()
    const signature = signModule(counter, privateKey)
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
    await expect(
      runtime.deploy('c', counter, { publicKeys: [other.publicKey, pem], signature }),
    ).resolves.toMatchObject({
      namespace: 'c',
    })
  })

  it('refuse unsigned, tampered and wrong-key modules', async () => {
    const { runtime } = setup()
    const signature = signModule(counter, privateKey)
    const tampered = counter.slice()
    tampered[tampered.length - 1]! ^= 1
    await expect(runtime.deploy('c', counter, { publicKeys: [publicKey] })).rejects.toBeInstanceOf(
      SignatureInvalidError,
    )
    await expect(
      runtime.deploy('c', tampered, { publicKeys: [publicKey], signature }),
    ).rejects.toBeInstanceOf(SignatureInvalidError)
    await expect(
      runtime.deploy('c', counter, { publicKeys: [other.publicKey], signature }),
    ).rejects.toBeInstanceOf(SignatureInvalidError)
    expect(runtime.moduleOf('c')).toBeUndefined()
  })
})

describe('deploy', () => {
  it('compiles a module once and reuses it by hash', async () => {
    const { runtime } = setup()
    const a = await runtime.deploy('a', counter)
    const b = await runtime.deploy('b', counter)
    expect(a.hash).toBe(b.hash)
    expect(runtime.stats().compiledModules).toBe(1)
  })

  it('refuses bytes that are not WebAssembly with a typed error', async () => {
    const { runtime } = setup()
    await expect(runtime.deploy('c', new TextEncoder().encode('not wasm'))).rejects.toBeInstanceOf(
      ModuleInvalidError,
    )
  })
})
