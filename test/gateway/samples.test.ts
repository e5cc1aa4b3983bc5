import { describe, expect, it } from 'vitest'
import { DurationSamples } from '../../node/ws/samples.js'

describe('DurationSamples', () => {
  it('summarises the most recent window only', () => {
    const s = new DurationSamples(100)
    expect(s.summary()).toEqual({ count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 })
    for (let i = 0; i < 100; i++) s.add(1_000) // pushed out by the next hundred
    for (let i = 1; i <= 100; i++) s.add(i)
    expect(s.summary()).toEqual({ count: 200, p50Ms: 51, p99Ms: 100, maxMs: 100 })
  })

  it('refuses a window that is not a positive integer', () => {
    expect(() => new DurationSamples(0)).toThrow(/'0'/)
  })
})
