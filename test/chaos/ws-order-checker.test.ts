/**
 * The WebSocket subscriber check on hand-written histories: what each subscriber received (ready,
 * events, EVENTS_GONE, resumes) and the posts the clients made, histories that must pass and
 * histories with one fault each that must fail with that fault named.
 */
import { describe, expect, it } from 'vitest'
import type { HistoryEvent } from '../../chaos/check/index.js'
import {
  checkWsOrder,
  comparePositions,
  type WsPost,
  type WsRecord,
  type WsViolation,
} from '../../chaos/check/ws-order.js'
import type { ChaosCluster } from '../../chaos/cluster.js'
import { StatusMonitor } from '../../chaos/monitor.js'
import { scenarios } from '../../chaos/nemesis.js'
import { buildReport } from '../../chaos/report.js'
import { renderTimeline } from '../../chaos/timeline.js'

const payload = (text: string) => JSON.stringify({ type: 'post', from: 'p', text })
const ready = (sub: number, pos: string, time: number, after?: string): WsRecord => ({
  sub,
  kind: 'ready',
  node: 0,
  pos,
  time,
  ...(after !== undefined ? { after } : {}),
})
const ev = (sub: number, pos: string, text: string, time: number): WsRecord => ({
  sub,
  kind: 'event',
  node: 0,
  pos,
  payload: payload(text),
  time,
})
const gone = (sub: number, time: number): WsRecord => ({ sub, kind: 'gone', node: 0, since: '9', time })
const post = (
  id: number,
  text: string,
  call: number,
  ret: number,
  status: WsPost['status'] = 'ok',
): WsPost => ({
  id,
  text,
  status,
  call,
  ret: status === 'info' ? Number.POSITIVE_INFINITY : ret,
})
const kinds = (vs: WsViolation[]) => vs.map((v) => v.kind)

// Posts a..e, one after another: a at 10-20 ms, b at 30-40, ..., e at 90-100.
const posts = ['a', 'b', 'c', 'd', 'e'].map((t, i) => post(i, t, 10 + 20 * i, 20 + 20 * i))

describe('positions compare as numbers', () => {
  it('orders by index, then by number within the entry, with a cursor after the whole entry', () => {
    const sorted = ['10', '10.1', '9.1', '10.0', '9.10', '100.0', '9.2'].sort(comparePositions)
    expect(sorted).toEqual(['9.1', '9.2', '9.10', '10.0', '10.1', '10', '100.0'])
    expect(comparePositions('12', '12')).toBe(0)
    expect(comparePositions('12.0', '12.0')).toBe(0)
  })

  it('throws RangeError naming a malformed position', () => {
    expect(() => comparePositions('1.2.3', '1')).toThrow(/'1\.2\.3'/)
    expect(() => comparePositions('1', 'x')).toThrow(RangeError)
  })
})

describe('WebSocket subscribers pass', () => {
  it('when every subscriber sees every post in order, across a resume on another node', () => {
    const records = [
      ready(0, '5', 1),
      ready(1, '5', 2),
      ev(0, '6.0', 'a', 21),
      ev(1, '6.0', 'a', 22),
      ev(0, '7.0', 'b', 41),
      // Subscriber 1's node dies; it resumes after 6.0 elsewhere and gets b late.
      { sub: 1, kind: 'close', node: 0, code: 1006, reason: '', time: 42 },
      { sub: 1, kind: 'connect', node: 1, after: '6.0', time: 43 },
      ready(1, '6.0', 45, '6.0'),
      ev(1, '7.0', 'b', 46),
      ev(0, '11.0', 'c', 61),
      ev(1, '11.0', 'c', 62),
    ] as WsRecord[]
    const r = checkWsOrder(records, posts.slice(0, 3))
    expect(r.violations).toEqual([])
    expect(r.posts).toEqual({ acked: 3, delivered: 3, notCheckable: 0, lost: 0 })
    expect(r).toMatchObject({ subscribers: 2, segments: 2, events: 6, positions: 3, connects: 1 })
  })

  it('when a subscriber skips ahead only across EVENTS_GONE, and a fresh socket repeats what the last one had', () => {
    const records = [
      ready(0, '5', 1),
      ready(1, '5', 2),
      ev(0, '6.0', 'a', 21),
      ev(1, '6.0', 'a', 22),
      gone(1, 30),
      ev(0, '7.0', 'b', 41),
      ev(0, '8.0', 'c', 61),
      // A fresh socket on a node whose feed lags starts before 8.0: 6.0 again is no duplicate.
      ready(1, '5', 70),
      ev(1, '6.0', 'a', 71),
      ev(1, '7.0', 'b', 72),
      ev(1, '8.0', 'c', 73),
    ]
    expect(checkWsOrder(records, posts.slice(0, 3)).violations).toEqual([])
  })

  it('and call a post nobody received not checkable when no segment spans it', () => {
    const records = [
      ready(0, '5', 1),
      ev(0, '6.0', 'a', 21),
      gone(0, 25),
      // b (30-40) was acknowledged while subscriber 0 had no segment; the next began at 50.
      ready(0, '8', 50),
      ev(0, '9.0', 'c', 61),
    ]
    const r = checkWsOrder(records, posts.slice(0, 3))
    expect(r.violations).toEqual([])
    expect(r.posts).toEqual({ acked: 3, delivered: 2, notCheckable: 1, lost: 0 })
    expect(r.notCheckable).toEqual([1])
  })

  it('and ignore events that are not posts (joins) and posts whose outcome is unknown', () => {
    const join = JSON.stringify({ type: 'join', name: 'p' })
    const records: WsRecord[] = [
      ready(0, '5', 1),
      { sub: 0, kind: 'event', node: 0, pos: '6.0', payload: join, time: 5 },
      ev(0, '7.0', 'a', 21),
    ]
    const r = checkWsOrder(records, [posts[0]!, post(1, 'x', 22, 0, 'info')])
    expect(r.violations).toEqual([])
    expect(r.posts).toEqual({ acked: 1, delivered: 1, notCheckable: 0, lost: 0 })
  })
})

describe('WebSocket subscribers fail', () => {
  it('on a duplicate after a resume', () => {
    const records = [
      ready(0, '5', 1),
      ev(0, '6.0', 'a', 21),
      ready(0, '6.0', 30, '6.0'),
      ev(0, '6.0', 'a', 31),
    ]
    const r = checkWsOrder(records, posts.slice(0, 1))
    expect(kinds(r.violations)).toEqual(['order'])
    expect(r.violations[0]!.message).toMatch(/duplicate/)
  })

  it('on positions out of commit order, compared as numbers (10.0 after 9.0, then 9.1)', () => {
    const records = [ready(0, '5', 1), ev(0, '9.0', 'a', 21), ev(0, '10.0', 'b', 41), ev(0, '9.1', 'c', 61)]
    const r = checkWsOrder(records, posts.slice(0, 3))
    expect(kinds(r.violations)).toEqual(['order'])
    expect(r.violations[0]!.pos).toBe('9.1')
  })

  it('on an event at or before the ready cursor', () => {
    const r = checkWsOrder([ready(0, '6', 1), ev(0, '6.0', 'a', 21)], posts.slice(0, 1))
    expect(kinds(r.violations)).toEqual(['order'])
  })

  it('on a gap: a position another subscriber received, inside a segment, is missing', () => {
    const records = [
      ready(0, '5', 1),
      ready(1, '5', 2),
      ev(0, '6.0', 'a', 21),
      ev(1, '6.0', 'a', 22),
      ev(0, '7.0', 'b', 41),
      ev(0, '8.0', 'c', 61),
      ev(1, '8.0', 'c', 62),
    ]
    const r = checkWsOrder(records, posts.slice(0, 3))
    expect(kinds(r.violations)).toEqual(['gap'])
    expect(r.violations[0]).toMatchObject({ sub: 1, pos: '7.0' })
  })

  it('on a gap right after the ready cursor, across a resume', () => {
    const records = [
      ready(0, '5', 1),
      ready(1, '5', 2),
      ev(0, '6.0', 'a', 21),
      ev(0, '6.1', 'b', 41),
      ev(1, '6.0', 'a', 42),
      ready(1, '6.0', 50, '6.0'),
      ev(1, '7.0', 'c', 61),
      ev(0, '7.0', 'c', 62),
    ]
    const r = checkWsOrder(records, posts.slice(0, 3))
    expect(kinds(r.violations)).toEqual(['gap'])
    expect(r.violations[0]).toMatchObject({ sub: 1, pos: '6.1' })
  })

  it('when one position carries two payloads', () => {
    const records = [ready(0, '5', 1), ready(1, '5', 2), ev(0, '6.0', 'a', 21), ev(1, '6.0', 'b', 22)]
    expect(kinds(checkWsOrder(records, posts.slice(0, 2)).violations)).toContain('payload')
  })

  it('when an acknowledged post reached nobody though a segment spans it', () => {
    // Subscriber 0 was ready before b was invoked and received c, invoked after b was acknowledged.
    const records = [ready(0, '5', 1), ev(0, '6.0', 'a', 21), ev(0, '8.0', 'c', 61)]
    const r = checkWsOrder(records, posts.slice(0, 3))
    expect(kinds(r.violations)).toEqual(['lost'])
    expect(r.violations[0]!.ops).toEqual([1])
    expect(r.posts).toEqual({ acked: 3, delivered: 2, notCheckable: 0, lost: 1 })
  })

  it('when a post is delivered twice (at two positions), or a post that certainly failed is delivered', () => {
    const records = [ready(0, '5', 1), ev(0, '6.0', 'a', 21), ev(0, '7.0', 'a', 22), ev(0, '8.0', 'b', 41)]
    const r = checkWsOrder(records, [posts[0]!, post(1, 'b', 30, 40, 'fail')])
    expect(kinds(r.violations).sort()).toEqual(['failed-seen', 'twice'])
    expect(r.violations.find((v) => v.kind === 'failed-seen')!.ops).toEqual([1])
  })

  it('when a resumed socket is ready at another position than its after, or an event comes before ready', () => {
    const records = [ready(0, '5', 1), ev(0, '6.0', 'a', 21), ready(0, '7', 30, '6.0'), ev(1, '6.0', 'a', 22)]
    expect(kinds(checkWsOrder(records, posts.slice(0, 1)).violations)).toEqual(['resume', 'protocol'])
  })
})

describe('the report and the timeline', () => {
  const cluster = { nodes: [], byPeer: () => undefined, up: () => [] } as unknown as ChaosCluster
  const h = (process: number, type: HistoryEvent['type'], value: unknown, time: number) =>
    ({ process, type, f: 'post', key: 'ws/room', value, time }) as HistoryEvent

  it("fail 'websocket order' on a lost post, mark it, and draw a lane per subscriber with its sockets", () => {
    const events = [
      h(300, 'invoke', 'a', 10),
      h(300, 'ok', '1', 20),
      h(300, 'invoke', 'b', 30),
      h(300, 'ok', '2', 40),
      h(300, 'invoke', 'c', 50),
      h(300, 'ok', '3', 60),
    ]
    const records: WsRecord[] = [
      { sub: 0, kind: 'connect', node: 1, time: 0 },
      ready(0, '5', 1),
      ev(0, '6.0', 'a', 21),
      { sub: 0, kind: 'close', node: 1, code: 1006, reason: 'silent', time: 30 },
      { sub: 0, kind: 'connect', node: 2, after: '6.0', time: 31 },
      ready(0, '6.0', 32, '6.0'),
      ev(0, '8.0', 'c', 61),
      { sub: 1, kind: 'connect', node: 0, time: 0 },
      ready(1, '5', 2),
      ev(1, '6.0', 'a', 22),
      gone(1, 25),
    ]
    const report = buildReport({
      scenario: scenarios.halves!,
      seed: 5,
      nodes: 3,
      seconds: 10,
      events,
      windows: [],
      nodeEvents: [],
      monitor: new StatusMonitor(cluster, () => 0, 250),
      recovery: { ok: true, ms: 12, boundMs: 30_000, groups: {} },
      finals: { ok: 0, missing: [] },
      convergence: { ok: true, ms: 40, behind: [] },
      stats: { attempts: 3, retries: 0, errors: {} },
      cluster,
      ws: { records, finish: { finalPost: 'c', caughtUp: [0], behind: [1] } },
    })
    const check = report.checks.find((c) => c.name === 'websocket order')!
    expect(check.passed).toBe(false)
    expect(check.detail).toMatch(/lost: post 'b'/)
    expect(check.detail).toMatch(/subscribers 1 never received the closing post/)
    expect(report.violatingOps).toContain(1)
    expect(report.ws!.sessions.map((x) => [x.sub, x.node, x.events, x.gone, x.close])).toEqual([
      [0, 1, 1, false, '1006 silent'],
      [0, 2, 1, false, undefined],
      [1, 0, 1, true, undefined],
    ])
    const html = renderTimeline(report, events, [])
    expect(html.match(/>ws subscriber \d</g)).toHaveLength(2)
    expect(html).toContain('subscriber 0 on n2 after 6.0: ready at 32 ms, 1 events')
    expect(html).toContain('#1 post ws/room')
  })
})
