/**
 * The picture of a run: one self-contained HTML page with an SVG — fault windows as bands, node
 * kills/restarts/pauses as marks, each group's leader over time (one colour per node), and each
 * client's operations as bars (green ok, grey certainly failed, orange unknown — drawn to the end
 * of the run, since it may take effect any time after its call), with the operations that break
 * a check in red. Hovering an element shows its details.
 */
import { type HistoryEvent, operations } from './check/index.js'
import type { LeaderSpan } from './monitor.js'
import type { Report } from './report.js'

const PLOT_WIDTH = 1400
const LEFT = 170
const LANE = 14
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#b07aa1',
  '#76b7b2',
  '#edc948',
  '#ff9da7',
  '#9c755f',
  '#e15759',
]

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

const short = (v: unknown) => {
  const s = JSON.stringify(v) ?? 'undefined'
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}

export function renderTimeline(report: Report, events: HistoryEvent[], spans: LeaderSpan[]): string {
  const ops = operations(events)
  const end = Math.max(report.durationMs, 1)
  const x = (t: number) => LEFT + (Math.min(t, end) / end) * PLOT_WIDTH
  const bad = new Set(report.violatingOps)
  const groups = [...new Set(spans.map((s) => s.group))].sort()
  const processes = [...new Set(ops.map((o) => o.process))].sort((a, b) => a - b)
  const top = 40
  const leaderTop = top
  const clientTop = leaderTop + groups.length * LANE + 30
  const sessions = report.ws?.sessions ?? []
  const subs = [...new Set(sessions.map((s) => s.sub))].sort((a, b) => a - b)
  const subTop = clientTop + processes.length * LANE + (subs.length > 0 ? 10 : 0)
  const height = subTop + subs.length * LANE + 40
  const parts: string[] = []

  for (const w of report.faults) {
    parts.push(
      `<rect x="${x(w.start)}" y="${top - 20}" width="${Math.max(1, x(w.end) - x(w.start))}" height="${height - top}" fill="#e15759" opacity="0.12"><title>${esc(`${w.fault}: ${w.detail} (${Math.round(w.start)}–${Math.round(w.end)} ms)`)}</title></rect>`,
      `<text x="${x(w.start) + 2}" y="${top - 8}" font-size="10" fill="#b22">${esc(w.fault)}</text>`,
    )
  }
  for (const e of report.nodeEvents) {
    const what = e.node >= 0 ? `${e.kind} n${e.node}` : e.kind
    parts.push(
      `<line x1="${x(e.time)}" x2="${x(e.time)}" y1="${top - 20}" y2="${height - 30}" stroke="#555" stroke-dasharray="3,3"><title>${esc(`${what} at ${Math.round(e.time)} ms`)}</title></line>`,
      `<text x="${x(e.time) + 2}" y="${height - 18}" font-size="10" fill="#333">${esc(what)}</text>`,
    )
  }
  groups.forEach((g, i) => {
    const y = leaderTop + i * LANE
    parts.push(`<text x="${LEFT - 6}" y="${y + 10}" font-size="11" text-anchor="end">leader ${esc(g)}</text>`)
    for (const s of spans.filter((sp) => sp.group === g)) {
      const fill = s.node < 0 ? '#ddd' : PALETTE[s.node % PALETTE.length]
      const who = s.node < 0 ? 'no leader seen' : `n${s.node} (term ${s.term})`
      parts.push(
        `<rect x="${x(s.from)}" y="${y + 1}" width="${Math.max(1, x(s.to) - x(s.from))}" height="${LANE - 3}" fill="${fill}"><title>${esc(`${g}: ${who}, ${Math.round(s.from)}–${Math.round(s.to)} ms`)}</title></rect>`,
      )
    }
  })
  const lane = new Map(processes.map((p, i) => [p, i]))
  processes.forEach((p, i) => {
    parts.push(
      `<text x="${LEFT - 6}" y="${clientTop + i * LANE + 10}" font-size="11" text-anchor="end">client ${p}</text>`,
    )
  })
  for (const op of ops) {
    const y = clientTop + lane.get(op.process)! * LANE
    const to = Number.isFinite(op.ret) ? op.ret : end
    const broken = bad.has(op.id)
    const fill = broken
      ? '#d62728'
      : op.status === 'ok'
        ? '#2a9d8f'
        : op.status === 'fail'
          ? '#bbb'
          : '#f4a261'
    const opacity = op.status === 'info' && !broken ? 0.35 : 0.9
    const title = `#${op.id} ${op.f} ${op.key} ${short(op.input)} → ${op.status === 'ok' ? short(op.output) : `${op.status} ${op.error ?? ''}`} [${Math.round(op.call)}–${Number.isFinite(op.ret) ? Math.round(op.ret) : '∞'} ms]`
    parts.push(
      `<rect x="${x(op.call)}" y="${y + 2}" width="${Math.max(1.5, x(to) - x(op.call))}" height="${LANE - 5}" fill="${fill}" opacity="${opacity}"${broken ? ' stroke="#000" stroke-width="1"' : ''}><title>${esc(title)}</title></rect>`,
    )
  }
  parts.push(...subscriberLanes(report, sessions, subs, subTop, x))
  for (let t = 0; t <= end; t += tickStep(end)) {
    parts.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${height - 34}" y2="${height - 30}" stroke="#000"/>`,
      `<text x="${x(t)}" y="${height - 4}" font-size="10" text-anchor="middle">${(t / 1000).toFixed(0)} s</text>`,
    )
  }
  const checks = report.checks
    .map(
      (c) =>
        `<li class="${c.passed ? 'ok' : 'bad'}"><b>${c.passed ? 'PASS' : 'FAIL'}</b> ${esc(c.name)}: ${esc(c.detail)}</li>`,
    )
    .join('\n')
  const nodes = report.cluster
    .map(
      (n) =>
        `<span style="color:${PALETTE[n.index % PALETTE.length]}">■</span> n${n.index} ${esc(n.peer.slice(-8))} (${n.state})`,
    )
    .join(' &nbsp; ')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>chaos ${esc(report.scenario)} seed ${report.seed}</title>
<style>body{font:13px system-ui,sans-serif;margin:16px}li.ok b{color:#2a7}li.bad b{color:#c22}code{background:#f4f4f4;padding:1px 4px}</style>
</head><body>
<h2>chaos: ${esc(report.scenario)} — ${report.passed ? 'passed' : 'FAILED'}</h2>
<p>${esc(report.description)}. ${report.nodes} nodes, ${report.seconds} s of faults, seed ${report.seed}. Replay: <code>${esc(report.replay)}</code></p>
<ul>${checks}</ul>
<p>${report.ops.total} operations: ${report.ops.ok} ok, ${report.ops.fail} failed, ${report.ops.info} unknown. Nodes: ${nodes}</p>
<p>Bars: <span style="color:#2a9d8f">■ ok</span> <span style="color:#999">■ certainly failed</span> <span style="color:#f4a261">■ unknown (drawn to the end)</span> <span style="color:#d62728">■ breaks a check</span>; red bands: faults; dashed lines: node events. Hover for details.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="${LEFT + PLOT_WIDTH + 20}" height="${height}" font-family="system-ui,sans-serif">
${parts.join('\n')}
</svg>
</body></html>
`
}

/**
 * One lane per WebSocket subscriber: each socket a bar from connect to close in its node's colour
 * (pale until ready), a black mark where it was told EVENTS_GONE; a subscriber a check names is red.
 */
function subscriberLanes(
  report: Report,
  sessions: NonNullable<Report['ws']>['sessions'],
  subs: number[],
  top: number,
  x: (t: number) => number,
): string[] {
  const parts: string[] = []
  const bad = new Set((report.ws?.violations ?? []).map((v) => v.sub))
  const lane = new Map(subs.map((s, i) => [s, i]))
  subs.forEach((s, i) => {
    const colour = bad.has(s) ? ' fill="#d62728" font-weight="bold"' : ''
    parts.push(
      `<text x="${LEFT - 6}" y="${top + i * LANE + 10}" font-size="11" text-anchor="end"${colour}>ws subscriber ${s}</text>`,
    )
  })
  for (const s of sessions) {
    const y = top + lane.get(s.sub)! * LANE
    const fill = PALETTE[s.node % PALETTE.length]
    const title = `subscriber ${s.sub} on n${s.node}${s.after ? ` after ${s.after}` : ' (fresh)'}: ${s.ready === undefined ? 'never ready' : `ready at ${Math.round(s.ready)} ms`}, ${s.events} events, ${s.gone ? 'EVENTS_GONE, ' : ''}closed ${s.close ?? '(open at the end)'} [${Math.round(s.from)}–${Math.round(s.to)} ms]`
    const ready = s.ready ?? s.to
    parts.push(
      `<rect x="${x(s.from)}" y="${y + 2}" width="${Math.max(1, x(ready) - x(s.from))}" height="${LANE - 5}" fill="${fill}" opacity="0.3"><title>${esc(title)}</title></rect>`,
      `<rect x="${x(ready)}" y="${y + 2}" width="${Math.max(1, x(s.to) - x(ready))}" height="${LANE - 5}" fill="${fill}" opacity="0.8"><title>${esc(title)}</title></rect>`,
    )
    if (s.gone) parts.push(`<rect x="${x(s.to) - 1}" y="${y}" width="2" height="${LANE}" fill="#000"/>`)
  }
  return parts
}

function tickStep(end: number): number {
  for (const step of [1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000]) if (end / step <= 30) return step
  return 120_000
}
