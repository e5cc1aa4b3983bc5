/**
 * The run's verdict and picture from a synthetic history and synthetic node-status samples: term
 * violations, leader spans, the checks, the violating ops, and the timeline marking them.
 */
import { describe, expect, it } from 'vitest'
import type { HistoryEvent } from '../../chaos/check/index.js'
import type { ChaosCluster } from '../../chaos/cluster.js'
import { StatusMonitor } from '../../chaos/monitor.js'
import { scenarios } from '../../chaos/nemesis.js'
import { buildReport } from '../../chaos/report.js'
import { renderTimeline } from '../../chaos/timeline.js'

const peers = ['12D3KooWAAA', '12D3KooWBBB', '12D3KooWCCC']
const cluster = {
  nodes: peers.map((peer, index) => ({ index, peer, state: 'up' })),
  byPeer: (p: string) => peers.map((peer, index) => ({ index, peer })).find((n) => n.peer === p),
  up: () => [],
} as unknown as ChaosCluster

function monitorWith(samples: Array<[number, number, string, string, number, string]>): StatusMonitor {
  const m = new StatusMonitor(cluster, () => 0, 250)
  for (const [time, node, group, role, term, lead] of samples)
    m.samples.push({ time, node, group, role, term, lead, commit: 0, applied: 0 })
  return m
}

const ev = (
  process: number,
  type: HistoryEvent['type'],
  f: string,
  key: string,
  value: unknown,
  time: number,
) => ({ process, type, f, key, value, time }) as HistoryEvent

describe('node status checks', () => {
  it('finds two leaders in one term, from a leader’s claim and a follower’s view', () => {
    const m = monitorWith([
      [0, 0, 'g', 'leader', 2, peers[0]!],
      [0, 1, 'g', 'follower', 2, peers[0]!],
      [300, 2, 'g', 'follower', 2, peers[2]!],
      [300, 0, 'g', 'leader', 3, peers[0]!],
    ])
    const v = m.termViolations()
    expect(v.map((x) => [x.group, x.term, x.leaders.sort()])).toEqual([['g', 2, [peers[0], peers[2]].sort()]])
    expect(v[0]!.claims).toContain('2:follower->2')
  })

  it('accepts a new leader in a new term, and draws leader spans with a gap', () => {
    const m = monitorWith([
      [0, 0, 'g', 'leader', 1, peers[0]!],
      [250, 0, 'g', 'leader', 1, peers[0]!],
      [500, 1, 'g', 'follower', 1, ''],
      [750, 1, 'g', 'leader', 2, peers[1]!],
      [760, 0, 'g', 'leader', 1, peers[0]!],
    ])
    expect(m.termViolations()).toEqual([])
    expect(m.termsSeen()).toEqual({ g: 2 })
    expect(m.leaderSpans().map((s) => [s.node, s.from, s.to])).toEqual([
      [0, 0, 500],
      [-1, 500, 750],
      [1, 750, 1000],
    ])
  })
})

describe('the report and the timeline', () => {
  it('fail the run on a stale register read and mark the ops that explain it', () => {
    const events: HistoryEvent[] = [
      ev(0, 'invoke', 'write', 'register/r0', 'a', 0),
      ev(0, 'ok', 'write', 'register/r0', 'ok', 10),
      ev(0, 'invoke', 'write', 'register/r0', 'b', 20),
      ev(0, 'ok', 'write', 'register/r0', 'ok', 30),
      ev(1, 'invoke', 'read', 'register/r0', null, 40),
      ev(1, 'ok', 'read', 'register/r0', 'a', 50),
      ev(2, 'invoke', 'append', 'list/l0', 'x', 0),
      ev(2, 'ok', 'append', 'list/l0', '1', 5),
      ev(2, 'invoke', 'read', 'list/l0', null, 60),
      ev(2, 'ok', 'read', 'list/l0', ['x'], 70),
      ev(3, 'invoke', 'add', 'counter/c0', 1, 0),
      ev(3, 'info', 'add', 'counter/c0', null, 5),
      ev(4, 'invoke', 'read', 'counter/c0', null, 60),
      ev(4, 'ok', 'read', 'counter/c0', 1, 70),
    ]
    const report = buildReport({
      scenario: scenarios.halves!,
      seed: 5,
      nodes: 3,
      seconds: 10,
      events,
      windows: [{ fault: 'halves', detail: '{n0} | {n1,n2}', start: 15, end: 45 }],
      nodeEvents: [{ kind: 'kill', node: 1, time: 20 }],
      monitor: monitorWith([[0, 0, 'chaos-reg', 'leader', 1, peers[0]!]]),
      recovery: { ok: true, ms: 12, boundMs: 30_000, groups: { _system: 3, 'chaos-reg': 12 } },
      finals: { ok: 3, missing: [] },
      convergence: { ok: true, ms: 40, behind: [] },
      stats: { attempts: 7, retries: 0, errors: {} },
      cluster,
    })
    expect(report.passed).toBe(false)
    expect(report.checks.filter((c) => !c.passed).map((c) => c.name)).toEqual(['register linearizable'])
    expect(report.violatingOps).toEqual([0, 1, 2])
    expect(report.register[0]!.violation!.ops.map((o) => o.input)).toEqual(['a', 'b', null])
    expect(report.replay).toBe('npm run chaos -- --scenario halves --nodes 3 --seconds 10 --seed 5')
    expect(report.counter[0]).toMatchObject({ acknowledged: 0, attempted: 1, final: 1 })

    const html = renderTimeline(report, events, [])
    expect(html).toContain('chaos: halves — FAILED')
    // The three ops of the violation are red; the list append is green.
    expect(html.match(/fill="#d62728"/g)).toHaveLength(3)
    expect(html).toContain('#1 write register/r0 &quot;b&quot;')
    expect(html).toContain('halves: {n0} | {n1,n2}')
  })
})
