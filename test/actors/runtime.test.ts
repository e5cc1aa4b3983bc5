import { beforeAll, describe, expect, it } from 'vitest'
import {
  ActorFailedError,
  ActorTrapError,
  CallDeadlineError,
  FuelExhaustedError,
  InvalidKeyError,
  MemoryLimitError,
  MethodNotFoundError,
  NamespaceNotDeployedError,
  PendingDiscardedError,
  ReadonlyViolationError,
  SizeLimitError,
  StackOverflowError,
  StateQuotaError,
} from '../../actors/index.js'
import { exampleModule, fixtureModule } from './examples.js'
import { setup, text, untext } from './harness.js'
import { abiModule, i32 } from './wasm-builder.js'

let bad: Uint8Array
let counter: Uint8Array

beforeAll(async () => {
  bad = await fixtureModule('misbehaving')
  counter = await exampleModule('counter')
})

const limits = {
  actorStateBytesMax: 64 * 1024,
  replyBytesMax: 1024,
  broadcastBytesMax: 1024,
  memoryPagesMax: 64,
}

describe('bad input', () => {
  const cases: Array<[method: string, error: new (...args: never[]) => Error]> = [
    ['spin', FuelExhaustedError],
    ['recurse', StackOverflowError],
    ['bomb', MemoryLimitError],
    ['trap', ActorTrapError],
    ['refuse', ActorFailedError],
    ['fill', StateQuotaError],
    ['big_reply', SizeLimitError],
    ['loud', SizeLimitError],
    ['no_such_method', MethodNotFoundError],
    ['sneaky', ReadonlyViolationError],
  ]
  for (const [method, error] of cases) {
    it(`'${method}' fails with ${error.name} and leaves the state untouched`, async () => {
      const { runtime, store, callText } = setup(limits)
      await runtime.deploy('bad', bad)
      await expect(runtime.call('bad', 'a', method, new Uint8Array())).rejects.toBeInstanceOf(error)
      expect(store.actors.get('a')?.size ?? 0).toBe(0)
      // The same actor and the runtime go on: the failed call's `touched` write is gone.
      expect(await callText('bad', 'a', 'count')).toBe('1')
    })
  }

  it('refuses an oversized payload before running the actor', async () => {
    const { runtime, callText } = setup({ ...limits, payloadBytesMax: 100 })
    await runtime.deploy('bad', bad)
    await expect(runtime.call('bad', 'a', 'count', new Uint8Array(101))).rejects.toMatchObject({
      code: 'ACTORMESH_SIZE_LIMIT',
      limit: 'payloadBytesMax',
    })
    expect(await callText('bad', 'a', 'count')).toBe('1')
  })

  it('refuses a state key that is not well-formed UTF-8', async () => {
    const { runtime, store } = setup()
    // handle: memory[100] = 0xff; state_set(100, 1, 100, 1)
    const module = abiModule({
      imports: [{ name: 'state_set', type: 2 }],
      extraTypes: [[[i32, i32, i32, i32], []]],
      handleBody: [
        0x41, 0xe4, 0x00, 0x41, 0xff, 0x01, 0x3a, 0x00, 0x00, 0x41, 0xe4, 0x00, 0x41, 0x01, 0x41, 0xe4, 0x00,
        0x41, 0x01, 0x10, 0x00,
      ],
    })
    await runtime.deploy('keys', module)
    await expect(runtime.call('keys', 'a', 'm', new Uint8Array())).rejects.toBeInstanceOf(InvalidKeyError)
    expect(store.actors.get('a')?.size ?? 0).toBe(0)
  })

  it('fails a call that runs past callDeadlineMs', async () => {
    const { runtime, clock } = setup({ callDeadlineMs: 1_000 })
    await runtime.deploy('c', counter)
    clock.tickMs = 600 // every clock read moves 600 ms: the second host call is past the deadline
    await expect(runtime.call('c', 'a', 'increment', new Uint8Array())).rejects.toBeInstanceOf(
      CallDeadlineError,
    )
  })

  it('fails a call to a namespace without a module', async () => {
    const { runtime } = setup()
    await expect(runtime.call('none', 'a', 'get', new Uint8Array())).rejects.toBeInstanceOf(
      NamespaceNotDeployedError,
    )
  })

  it('throws TypeError for arguments of the wrong type', async () => {
    const { runtime } = setup()
    await runtime.deploy('c', counter)
    await expect(runtime.call('c', '', 'get', new Uint8Array())).rejects.toBeInstanceOf(TypeError)
    await expect(runtime.call('c', 'a', 'get', 'x' as unknown as Uint8Array)).rejects.toBeInstanceOf(
      TypeError,
    )
  })
})

describe('fuel', () => {
  it('is the same for the same call and grows with the work done', async () => {
    const { runtime } = setup()
    await runtime.deploy('bad', bad)
    const run = async (n: number) =>
      (await runtime.call('bad', 'x', 'loops', text.encode(String(n)), { now: 1, seed: 1 })).fuelUsed
    const a = await run(100)
    expect(await run(100)).toBe(a)
    expect(await run(1_000)).toBeGreaterThan(a)
  })
})

describe('input gate and pending writes', () => {
  it('runs concurrent calls to one actor one at a time, in arrival order', async () => {
    const { runtime } = setup()
    await runtime.deploy('c', counter)
    const calls = Array.from({ length: 40 }, () => runtime.call('c', 'a', 'increment', new Uint8Array()))
    const replies = (await Promise.all(calls)).map((r) => untext(r.reply))
    expect(replies).toEqual(Array.from({ length: 40 }, (_, i) => String(i + 1)))
  })

  it('shows pending writes to later calls, and discard drops them and the queued calls', async () => {
    const { runtime, store } = setup()
    await runtime.deploy('c', counter)
    expect(untext((await runtime.call('c', 'a', 'increment', new Uint8Array())).reply)).toBe('1')
    expect(untext((await runtime.call('c', 'a', 'increment', new Uint8Array())).reply)).toBe('2')
    const queued = [
      runtime.call('c', 'a', 'increment', new Uint8Array()),
      runtime.call('c', 'a', 'get', new Uint8Array()),
    ]
    runtime.discard('c', 'a')
    for (const q of queued) await expect(q).rejects.toBeInstanceOf(PendingDiscardedError)
    expect(store.actors.get('a')?.size ?? 0).toBe(0)
    // Nothing was committed: the actor reloads from the (empty) store.
    expect(untext((await runtime.call('c', 'a', 'get', new Uint8Array())).reply)).toBe('0')
  })

  it('keeps a trap in one actor from affecting another', async () => {
    const { runtime, callText } = setup(limits)
    await runtime.deploy('bad', bad)
    await expect(runtime.call('bad', 'a', 'trap', new Uint8Array())).rejects.toBeInstanceOf(ActorTrapError)
    expect(await callText('bad', 'b', 'count')).toBe('1')
  })
})

describe('eviction', () => {
  it('bounds resident actors by count and reloads evicted state from the store', async () => {
    const { runtime, store, callText } = setup({ residentActorsMax: 3 })
    await runtime.deploy('c', counter)
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < 10; i++) expect(await callText('c', `a${i}`, 'increment')).toBe(String(round))
    }
    expect(runtime.stats().residentActors).toBeLessThanOrEqual(3)
    expect(runtime.stats().evictions).toBeGreaterThan(0)
    expect(store.loads).toBeGreaterThan(10)
  })

  it('bounds resident bytes', async () => {
    const { runtime, callText } = setup({ residentBytesMax: 8 * 1024 })
    await runtime.deploy('c', counter)
    for (let i = 0; i < 50; i++) await callText('c', `a${i}`, 'increment')
    expect(runtime.stats().residentBytes).toBeLessThanOrEqual(8 * 1024)
    expect(await callText('c', 'a0', 'get')).toBe('1')
  })

  it('evicts idle actors after idleEvictMs, but never one with pending writes', async () => {
    const { runtime, clock, callText } = setup({ idleEvictMs: 1_000 })
    await runtime.deploy('c', counter)
    await callText('c', 'committed', 'increment')
    await runtime.call('c', 'pending', 'increment', new Uint8Array())
    clock.advance(1_000)
    expect(runtime.evictIdle()).toBe(1)
    expect(runtime.stats().residentActors).toBe(1)
    expect(untext((await runtime.call('c', 'pending', 'get', new Uint8Array())).reply)).toBe('1')
    expect(await callText('c', 'committed', 'get')).toBe('1')
  })
})

describe('read-only methods', () => {
  it('are published by the module and listed per namespace', async () => {
    const { runtime } = setup()
    await runtime.deploy('c', counter)
    expect(runtime.isReadonly('c', 'get')).toBe(true)
    expect(runtime.isReadonly('c', 'increment')).toBe(false)
  })
})

describe('close', () => {
  it('fails queued and later calls with a retryable error', async () => {
    const { runtime } = setup()
    await runtime.deploy('c', counter)
    const queued = runtime.call('c', 'a', 'increment', new Uint8Array())
    runtime.close()
    await expect(queued).rejects.toMatchObject({ retryable: true })
    await expect(runtime.call('c', 'a', 'get', new Uint8Array())).rejects.toBeInstanceOf(
      PendingDiscardedError,
    )
  })

  it('a call whose own signal is aborted does not run', async () => {
    const { runtime, store } = setup()
    await runtime.deploy('c', counter)
    const controller = new AbortController()
    const call = runtime.call('c', 'a', 'increment', new Uint8Array(), { signal: controller.signal })
    controller.abort()
    await expect(call).rejects.toThrow()
    expect(store.loads).toBe(0)
  })
})
