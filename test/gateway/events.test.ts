import { describe, expect, it } from 'vitest'
import {
  type AppliedEvents,
  comparePos,
  END,
  EventLog,
  formatPos,
  ORIGIN,
  type Pos,
  parsePos,
  type StoredEvent,
} from '../../node/ws/events.js'
import { seededRandom } from '../consensus/harness.js'

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (e: StoredEvent) => new TextDecoder().decode(e.data)
const entry = (index: number, ...events: Array<[string, string]>): AppliedEvents => ({
  index,
  events: events.map(([actor, data]) => ({ actor, data: bytes(data) })),
})
const all = (log: EventLog, actor: string, after: Pos = ORIGIN) => {
  const r = log.replay('ns', actor, after, 1_000, 1 << 30)
  if (r.gone) throw new Error(`gone since ${formatPos(r.since)}`)
  return r.events.map(text)
}

describe('positions', () => {
  it('format and parse round-trip, a bare index is the cursor over the whole entry', () => {
    expect(formatPos({ index: 17, n: 0 })).toBe('17.0')
    expect(formatPos({ index: 17, n: END })).toBe('17')
    expect(parsePos('17.2')).toEqual({ index: 17, n: 2 })
    expect(parsePos('17')).toEqual({ index: 17, n: END })
  })

  it('order by index, then by number within the entry; the whole-entry cursor comes last', () => {
    expect(comparePos(parsePos('3.1'), parsePos('4.0'))).toBeLessThan(0)
    expect(comparePos(parsePos('4.1'), parsePos('4.0'))).toBeGreaterThan(0)
    expect(comparePos(parsePos('4'), parsePos('4.99'))).toBeGreaterThan(0)
    expect(comparePos(parsePos('4.0'), parsePos('4.0'))).toBe(0)
  })

  it('rejects text that is not a position, naming it', () => {
    for (const bad of ['', 'x', '1.', '.1', '-1', '1.2.3', '1e3'])
      expect(() => parsePos(bad)).toThrow(new RegExp(`'${bad.replace('.', '\\.')}'`))
  })
})

describe('EventLog', () => {
  it('keeps each actor its broadcasts in commit order with their positions', () => {
    const log = new EventLog()
    log.reset('ns', 0)
    const touched = log.append('ns', [entry(1, ['a', 'a1'], ['b', 'b1'], ['a', 'a2']), entry(3, ['a', 'a3'])])
    expect([...touched].sort()).toEqual(['a', 'b'])
    const r = log.replay('ns', 'a', ORIGIN, 10, 1 << 20)
    expect(r.gone).toBe(false)
    expect(r.events?.map((e) => formatPos(e))).toEqual(['1.0', '1.2', '3.0'])
    expect(all(log, 'b')).toEqual(['b1'])
    expect(log.tail('ns')).toEqual({ index: 3, n: END })
  })

  it('replays only what follows the cursor, in bounded pages', () => {
    const log = new EventLog()
    log.reset('ns', 0)
    for (let i = 1; i <= 10; i++) log.append('ns', [entry(i, ['a', `m${i}`])])
    expect(all(log, 'a', parsePos('4.0'))).toEqual(['m5', 'm6', 'm7', 'm8', 'm9', 'm10'])
    expect(all(log, 'a', parsePos('4'))).toEqual(['m5', 'm6', 'm7', 'm8', 'm9', 'm10'])
    const page = log.replay('ns', 'a', parsePos('4'), 2, 1 << 20)
    expect(page.events?.map(text)).toEqual(['m5', 'm6'])
    expect(page.gone === false && page.more).toBe(true)
    // The byte bound still returns one event, however large.
    expect(log.replay('ns', 'a', ORIGIN, 10, 1).events?.map(text)).toEqual(['m1'])
    expect(all(log, 'a', parsePos('10'))).toEqual([])
  })

  it('ignores entries at or before its tail (a batch seen twice)', () => {
    const log = new EventLog()
    log.reset('ns', 5)
    log.append('ns', [entry(5, ['a', 'old']), entry(6, ['a', 'new'])])
    log.append('ns', [entry(6, ['a', 'again'])])
    expect(all(log, 'a', parsePos('5'))).toEqual(['new'])
  })

  it('answers gone for a cursor before where it started', () => {
    const log = new EventLog()
    log.reset('ns', 100)
    log.append('ns', [entry(101, ['a', 'x'])])
    expect(log.replay('ns', 'a', parsePos('99.0'), 10, 1 << 20)).toEqual({
      gone: true,
      since: { index: 100, n: END },
    })
    expect(all(log, 'a', parsePos('100'))).toEqual(['x'])
    // An actor with no broadcasts yet: everything after the start is known (nothing).
    expect(all(log, 'quiet', parsePos('100'))).toEqual([])
    expect(log.replay('ns', 'quiet', parsePos('50'), 10, 1 << 20).gone).toBe(true)
  })

  it('drops the oldest broadcasts of an actor beyond its count and byte bounds, and says so', () => {
    const log = new EventLog({ actorEventsMax: 3, actorBytesMax: 1_000 })
    log.reset('ns', 0)
    for (let i = 1; i <= 5; i++) log.append('ns', [entry(i, ['a', `m${i}`])])
    expect(all(log, 'a', parsePos('2.0'))).toEqual(['m3', 'm4', 'm5'])
    expect(log.replay('ns', 'a', parsePos('1.0'), 10, 1 << 20)).toMatchObject({
      gone: true,
      since: parsePos('2.0'),
    })
    log.append('ns', [entry(6, ['a', 'x'.repeat(999)])])
    expect(all(log, 'a', parsePos('5.0')).map((t) => t.length)).toEqual([999])
    expect(log.stats().bytes).toBe(999)
    expect(log.replay('ns', 'a', parsePos('5.0'), 10, 1 << 20).gone).toBe(false)
    expect(log.replay('ns', 'a', parsePos('4.0'), 10, 1 << 20).gone).toBe(true)
  })

  it('drops whole actors least recently used first beyond actorsMax, raising the floor for unknown actors', () => {
    const log = new EventLog({ actorsMax: 2 })
    log.reset('ns', 0)
    log.append('ns', [entry(1, ['a', 'a1']), entry(2, ['b', 'b1'])])
    all(log, 'a') // a replay counts as use: b is now the least recently used
    log.append('ns', [entry(3, ['c', 'c1'])])
    expect(log.stats().actors).toBe(2)
    expect(all(log, 'a')).toEqual(['a1'])
    expect(log.replay('ns', 'b', ORIGIN, 10, 1 << 20)).toMatchObject({ gone: true, since: parsePos('2.0') })
    expect(all(log, 'b', parsePos('2.0'))).toEqual([])
  })

  it('stays within its total byte bound', () => {
    const log = new EventLog({ bytesMax: 100, actorBytesMax: 80 })
    log.reset('ns', 0)
    const random = seededRandom(7)
    for (let i = 1; i <= 300; i++)
      log.append('ns', [entry(i, [`a${random(20)}`, 'x'.repeat(1 + random(40))])])
    expect(log.stats().bytes).toBeLessThanOrEqual(100)
  })

  it('after a reset holds nothing from before it', () => {
    const log = new EventLog()
    log.reset('ns', 0)
    log.append('ns', [entry(1, ['a', 'a1'])])
    log.reset('ns', 40)
    expect(log.stats().actors).toBe(0)
    expect(log.replay('ns', 'a', ORIGIN, 10, 1 << 20).gone).toBe(true)
    log.append('ns', [entry(41, ['a', 'a41'])])
    expect(all(log, 'a', parsePos('40'))).toEqual(['a41'])
  })

  it('replays exactly the broadcasts after any cursor it reaches back to (random histories)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = seededRandom(seed)
      const log = new EventLog({ actorEventsMax: 1 + random(30), actorsMax: 1 + random(4) })
      log.reset('ns', 0)
      const truth = new Map<string, Array<{ pos: Pos; data: string }>>()
      let index = 0
      for (let i = 0; i < 200; i++) {
        index += 1 + random(3)
        const events: Array<[string, string]> = []
        for (let n = random(4); n > 0; n--) events.push([`a${random(5)}`, `e${index}.${events.length}`])
        log.append('ns', [entry(index, ...events)])
        events.forEach(([actor, data], n) => {
          const list = truth.get(actor) ?? []
          list.push({ pos: { index, n }, data })
          truth.set(actor, list)
        })
      }
      for (const [actor, list] of truth) {
        for (let k = 0; k < 20; k++) {
          const after = list[random(list.length)]!.pos
          const r = log.replay('ns', actor, after, 1_000, 1 << 30)
          if (r.gone) {
            expect(comparePos(after, r.since), `seed ${seed}`).toBeLessThan(0)
            continue
          }
          const want = list.filter((e) => comparePos(e.pos, after) > 0).map((e) => e.data)
          expect(r.events.map(text), `seed ${seed} ${actor} after ${formatPos(after)}`).toEqual(want)
        }
      }
    }
  })
})
