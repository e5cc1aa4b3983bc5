import { beforeAll, describe, expect, it } from 'vitest'
import { exampleModule, fixtureModule } from './examples.js'
import { setup, text, untext } from './harness.js'

let counter: Uint8Array
let counterV2: Uint8Array
let chat: Uint8Array
let bad: Uint8Array

beforeAll(async () => {
  counter = await exampleModule('counter')
  counterV2 = await fixtureModule('counter-v2')
  chat = await exampleModule('chat')
  bad = await fixtureModule('misbehaving')
})

describe('replay', () => {
  it('gives the same reply, write set and fuel for a recorded call', async () => {
    const { runtime, callText } = setup()
    await runtime.deploy('c', counter)
    await callText('c', 'a', 'increment', '3')
    await callText('c', 'a', 'increment')
    const records = runtime.exportCalls('c', 'a')
    expect(records).toHaveLength(2)
    const result = await runtime.replay(records[1]!)
    expect(result.differences).toEqual([])
    expect(result.unrecordedReads).toEqual([])
    expect(result.outcome.ok && untext(result.outcome.reply)).toBe('4')
  })

  it('reproduces calls that use now, random and list exactly', async () => {
    const { runtime, callText } = setup()
    await runtime.deploy('chat', chat)
    await runtime.deploy('bad', bad)
    await callText('chat', 'r', 'join', 'ann')
    await callText('chat', 'r', 'post', '{"from":"ann","text":"hi"}', 42)
    await callText('chat', 'r', 'history')
    for (const record of runtime.exportCalls('chat', 'r')) {
      expect((await runtime.replay(record)).differences).toEqual([])
    }
    const dice = await callText('bad', 'd', 'dice', '', 99, 12345)
    const replayed = await runtime.replay(runtime.exportCalls('bad', 'd')[0]!)
    expect(replayed.outcome.ok && untext(replayed.outcome.reply)).toBe(dice)
  })

  it('reproduces a failed call with the same error', async () => {
    const { runtime } = setup()
    await runtime.deploy('bad', bad)
    await expect(runtime.call('bad', 'x', 'spin', new Uint8Array())).rejects.toThrow()
    const result = await runtime.replay(runtime.exportCalls('bad', 'x')[0]!)
    expect(result.outcome).toMatchObject({ ok: false, code: 'ACTORMESH_FUEL_EXHAUSTED' })
    expect(result.differences).toEqual([])
  })

  it('shows the differences when replayed with another module version', async () => {
    const { runtime, callText } = setup()
    await runtime.deploy('c', counter)
    await callText('c', 'a', 'increment')
    const result = await runtime.replay(runtime.exportCalls('c', 'a')[0]!, { moduleBytes: counterV2 })
    expect(result.outcome.ok && untext(result.outcome.reply)).toBe('2')
    expect(result.differences.some((d) => d.startsWith('reply:'))).toBe(true)
    expect(result.differences.some((d) => d.startsWith("write 'count'"))).toBe(true)
  })

  it('keeps at most replayRingSize records per actor', async () => {
    const { runtime } = setup({ replayRingSize: 3 })
    await runtime.deploy('c', counter)
    for (let i = 0; i < 5; i++) await runtime.call('c', 'a', 'increment', text.encode('1'))
    const records = runtime.exportCalls('c', 'a')
    expect(records).toHaveLength(3)
    expect(records.map((r) => r.outcome.ok && untext(r.outcome.reply))).toEqual(['3', '4', '5'])
  })
})
