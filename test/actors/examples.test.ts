import { beforeAll, describe, expect, it } from 'vitest'
import { ActorFailedError, alarmKey, decodeAlarm } from '../../actors/index.js'
import { type ExampleName, exampleModule, exampleNames } from './examples.js'
import { setup, text, untext } from './harness.js'

const modules = new Map<ExampleName, Uint8Array>()

beforeAll(async () => {
  for (const name of exampleNames) modules.set(name, await exampleModule(name))
})

async function deployed(name: ExampleName) {
  const h = setup()
  await h.runtime.deploy(name, modules.get(name)!)
  return h
}

describe('counter example', () => {
  it('increments by the payload (default 1) and reads the count', async () => {
    const { callText } = await deployed('counter')
    expect(await callText('counter', 'a', 'increment')).toBe('1')
    expect(await callText('counter', 'a', 'increment', '41')).toBe('42')
    expect(await callText('counter', 'a', 'get')).toBe('42')
    expect(await callText('counter', 'b', 'get')).toBe('0')
  })

  it('records a durable alarm in the write set, lists it when due, and clears it when fired', async () => {
    const { runtime, callText, store } = await deployed('counter')
    await callText('counter', 'a', 'increment', '5')
    const r = await runtime.call('counter', 'a', 'reset_at', text.encode('5000'))
    expect(r.writes).toEqual([{ actor: 'a', key: alarmKey, value: expect.any(Uint8Array) }])
    expect(decodeAlarm(r.writes[0]!.value!)).toBe(5000)
    store.apply(r.writes)
    runtime.commit('counter', 'a', r.callId)
    expect(runtime.dueAlarms('counter', 4999)).toEqual([])
    expect(runtime.dueAlarms('counter', 5000)).toEqual([{ actor: 'a', atMs: 5000 }])
    const fired = await runtime.call('counter', 'a', 'alarm', new Uint8Array())
    expect(fired.writes.map((w) => [w.key, w.value === null])).toEqual([
      [alarmKey, true],
      ['count', false],
    ])
    store.apply(fired.writes)
    runtime.commit('counter', 'a', fired.callId)
    expect(runtime.dueAlarms('counter', 10_000)).toEqual([])
    expect(await callText('counter', 'a', 'get')).toBe('0')
  })
})

describe('register example', () => {
  it('reads, writes and compare-and-sets', async () => {
    const { callText, runtime } = await deployed('register')
    expect(await callText('register', 'r', 'read')).toBe('')
    expect(JSON.parse(await callText('register', 'r', 'cas', '{"expect":null,"value":"a"}'))).toEqual({
      ok: true,
      value: 'a',
    })
    expect(JSON.parse(await callText('register', 'r', 'cas', '{"expect":"x","value":"b"}'))).toEqual({
      ok: false,
      value: 'a',
    })
    expect(JSON.parse(await callText('register', 'r', 'cas', '{"expect":"a","value":"b \\"q\\""}'))).toEqual({
      ok: true,
      value: 'b "q"',
    })
    expect(await callText('register', 'r', 'write', 'c')).toBe('ok')
    expect(await callText('register', 'r', 'read')).toBe('c')
    await expect(runtime.call('register', 'r', 'cas', text.encode('{}'))).rejects.toBeInstanceOf(
      ActorFailedError,
    )
  })
})

describe('list-append example', () => {
  it('appends values and reads them back in order', async () => {
    const { callText } = await deployed('list-append')
    for (let i = 1; i <= 12; i++)
      expect(await callText('list-append', 'l', 'append', `v${i}`)).toBe(String(i))
    expect(JSON.parse(await callText('list-append', 'l', 'read'))).toEqual(
      Array.from({ length: 12 }, (_, i) => `v${i + 1}`),
    )
  })
})

describe('chat example', () => {
  it('lets members join and post, broadcasts each post, and keeps a bounded history', async () => {
    const { callText, runtime, commit } = await deployed('chat')
    expect(await callText('chat', 'room', 'join', 'ann')).toBe('joined')
    expect(await callText('chat', 'room', 'join', 'ann')).toBe('already a member')
    await expect(
      runtime.call('chat', 'room', 'post', text.encode('{"from":"bob","text":"hi"}')),
    ).rejects.toBeInstanceOf(ActorFailedError)
    const r = commit(
      'chat',
      'room',
      await runtime.call('chat', 'room', 'post', text.encode('{"from":"ann","text":"hi"}'), { now: 123 }),
    )
    expect(r.broadcasts.map((b) => JSON.parse(untext(b)))).toEqual([
      { type: 'post', seq: 1, from: 'ann', text: 'hi', at: 123 },
    ])
    for (let i = 2; i <= 55; i++)
      await callText('chat', 'room', 'post', JSON.stringify({ from: 'ann', text: `m${i}` }))
    const history = JSON.parse(await callText('chat', 'room', 'history')) as Array<{ seq: number }>
    expect(history).toHaveLength(50)
    expect(history[0]!.seq).toBe(6)
    expect(history[49]!.seq).toBe(55)
  })
})

describe('rate-limiter example', () => {
  it('allows up to capacity, then refills with the call timestamp', async () => {
    const { callText } = await deployed('rate-limiter')
    await callText('rate-limiter', 'k', 'configure', '{"capacity":3,"rate":1}')
    const take = async (now: number) =>
      JSON.parse(await callText('rate-limiter', 'k', 'take', '', now)) as { allowed: boolean }
    expect([await take(0), await take(0), await take(0), await take(0)].map((t) => t.allowed)).toEqual([
      true,
      true,
      true,
      false,
    ])
    expect((await take(500)).allowed).toBe(false)
    expect((await take(1_000)).allowed).toBe(true)
    expect((await take(1_000)).allowed).toBe(false)
  })
})

describe('example fuel', () => {
  it('is the same when the same call runs on the same state', async () => {
    const { runtime } = await deployed('chat')
    const post = () => runtime.call('chat', 'r', 'join', text.encode('ann'), { now: 1, seed: 1 })
    const first = await post()
    runtime.discard('chat', 'r')
    expect((await post()).fuelUsed).toBe(first.fuelUsed)
  })
})
