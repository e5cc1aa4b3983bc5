import { describe, expect, it } from 'vitest'
import { formatEvent, type HistoryEvent, operations, parseHistory } from '../../chaos/check/index.js'

const ev = (
  process: number,
  type: HistoryEvent['type'],
  f: string,
  value: unknown,
  time: number,
): HistoryEvent => ({
  process,
  type,
  f,
  key: 'k',
  value,
  time,
})

describe('history pairing', () => {
  it('pairs each invocation with its process’s completion', () => {
    const ops = operations([
      ev(0, 'invoke', 'write', 'a', 0),
      ev(1, 'invoke', 'read', null, 1),
      ev(1, 'ok', 'read', null, 2),
      ev(0, 'ok', 'write', 'a', 3),
    ])
    expect(ops.map((o) => [o.f, o.status, o.input, o.output, o.call, o.ret])).toEqual([
      ['write', 'ok', 'a', 'a', 0, 3],
      ['read', 'ok', null, null, 1, 2],
    ])
  })

  it('makes an info completion and an invocation left open indeterminate, returning at infinity', () => {
    const ops = operations([
      ev(0, 'invoke', 'write', 'a', 0),
      { ...ev(0, 'info', 'write', null, 5), error: 'timeout' },
      ev(1, 'invoke', 'write', 'b', 6),
    ])
    expect(ops.map((o) => [o.status, o.ret, o.error])).toEqual([
      ['info', Number.POSITIVE_INFINITY, 'timeout'],
      ['info', Number.POSITIVE_INFINITY, undefined],
    ])
  })

  it('keeps the completion time of a certain failure', () => {
    const [o] = operations([
      ev(0, 'invoke', 'write', 'a', 0),
      { ...ev(0, 'fail', 'write', null, 4), error: 'ACTORMESH_NOT_APPLIED' },
    ])
    expect([o!.status, o!.ret, o!.error]).toEqual(['fail', 4, 'ACTORMESH_NOT_APPLIED'])
  })

  it('refuses a completion without an invocation, two open invocations, and a mismatched completion', () => {
    expect(() => operations([ev(0, 'ok', 'read', null, 0)])).toThrow(/completes nothing in process 0/)
    expect(() => operations([ev(0, 'invoke', 'read', null, 0), ev(0, 'invoke', 'read', null, 1)])).toThrow(
      /invokes again/,
    )
    expect(() => operations([ev(0, 'invoke', 'read', null, 0), ev(0, 'ok', 'write', null, 1)])).toThrow(
      /does not match/,
    )
  })

  it('round-trips through JSON lines and names a bad line', () => {
    const events = [ev(0, 'invoke', 'write', 'a', 0.5), ev(0, 'ok', 'write', 'a', 1.25)]
    expect(parseHistory(events.map(formatEvent).join(''))).toEqual(events)
    expect(() => parseHistory('{"a":1}\nnot json\n')).toThrow(/line 2: 'not json'/)
  })
})
