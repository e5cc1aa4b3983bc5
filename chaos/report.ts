/**
 * The verdict of a run: every check over the history (register linearizability per key,
 * list-append, counter) and over node status (one leader per term per group, recovery after the
 * faults heal, final reads), gathered into `report.json`.
 */
import {
  type CounterKeyResult,
  checkCounter,
  checkListAppend,
  checkRegister,
  type HistoryEvent,
  type ListKeyResult,
  type Operation,
  operations,
} from './check/index.js'
import { checkWsOrder, type WsOrderResult, type WsPost, type WsRecord } from './check/ws-order.js'
import type { ChaosCluster } from './cluster.js'
import type { StatusMonitor, TermViolation } from './monitor.js'
import type { FaultWindow, Scenario } from './nemesis.js'
import type { Convergence, Recovery } from './run.js'
import type { ClientStats } from './workload.js'
import type { WsFinish } from './ws-workload.js'

/** A node lifecycle event (kill, restart, pause, resume, remove) at a run time. */
export interface NodeEvent {
  kind: string
  node: number
  detail?: string
  time: number
}

/** One subscriber socket's life, for the timeline's subscriber lanes. */
export interface WsSession {
  sub: number
  node: number
  after?: string
  from: number
  ready?: number
  to: number
  events: number
  gone: boolean
  close?: string
}

/** One check's verdict. */
export interface Check {
  name: string
  passed: boolean
  detail: string
}

/** An operation as the report lists it. */
export interface ReportedOp {
  id: number
  process: number
  f: string
  key: string
  input: unknown
  output: unknown
  status: string
  call: number
  ret: number | null
  error?: string
}

export interface Report {
  scenario: string
  description: string
  seed: number
  nodes: number
  seconds: number
  /** The command that runs this scenario again with the same seed. */
  replay: string
  passed: boolean
  checks: Check[]
  ops: { total: number; ok: number; fail: number; info: number }
  register: Array<{
    key: string
    verdict: string
    ops: number
    violation?: { at: number; ops: ReportedOp[] }
  }>
  list: ListKeyResult[]
  counter: CounterKeyResult[]
  /** The WebSocket subscribers' check, and who received the closing post (absent without subscribers). */
  ws?: WsOrderResult & WsFinish & { sessions: WsSession[] }
  leaders: {
    termViolations: TermViolation[]
    termsSeen: Record<string, number>
    /** Per group, the longest stretch (ms) in which no node claimed leadership. */
    leaderlessMaxMs: Record<string, number>
    samples: number
  }
  recovery: Recovery
  finalReads: { ok: number; missing: string[] }
  convergence: Convergence
  faults: FaultWindow[]
  nodeEvents: NodeEvent[]
  cluster: Array<{ index: number; peer: string; state: string }>
  clients: ClientStats
  /** Ids of the operations that break a check (marked on the timeline). */
  violatingOps: number[]
  /** Run time of the last event, in milliseconds. */
  durationMs: number
}

export interface ReportInput {
  scenario: Scenario
  seed: number
  nodes: number
  seconds: number
  events: HistoryEvent[]
  windows: FaultWindow[]
  nodeEvents: NodeEvent[]
  monitor: StatusMonitor
  recovery: Recovery
  finals: { ok: number; missing: string[] }
  convergence: Convergence
  stats: ClientStats
  cluster: ChaosCluster
  /** What the WebSocket subscribers recorded (ws.jsonl), and how the closing post went. */
  ws?: { records: WsRecord[]; finish: WsFinish }
}

const reported = (op: Operation): ReportedOp => ({
  id: op.id,
  process: op.process,
  f: op.f,
  key: op.key,
  input: op.input,
  output: op.output,
  status: op.status,
  call: op.call,
  ret: Number.isFinite(op.ret) ? op.ret : null,
  ...(op.error ? { error: op.error } : {}),
})

export function buildReport(input: ReportInput): Report {
  const ops = operations(input.events)
  const of = (w: string) => ops.filter((op) => op.key.startsWith(`${w}/`))
  const register = checkRegister(of('register'))
  const list = checkListAppend(of('list'))
  const counter = checkCounter(of('counter'))
  const ws = input.ws
    ? {
        ...checkWsOrder(input.ws.records, wsPosts(of('ws'))),
        ...input.ws.finish,
        sessions: wsSessions(input.ws.records),
      }
    : undefined
  const termViolations = input.monitor.termViolations()
  const violating = new Set<number>()
  for (const r of register) for (const op of r.violation?.ops ?? []) violating.add(op.id)
  for (const k of [...list, ...counter])
    for (const v of k.violations) for (const id of v.ops) violating.add(id)
  for (const v of ws?.violations ?? []) for (const id of v.ops) violating.add(id)

  const badKeys = register.filter((r) => r.verdict !== 'ok')
  const listBad = list.flatMap((k) => k.violations)
  const counterBad = counter.flatMap((k) => k.violations)
  const checks: Check[] = [
    {
      name: 'register linearizable',
      passed: badKeys.length === 0 && register.length > 0,
      detail:
        register.length === 0
          ? 'no register operations'
          : badKeys.length === 0
            ? `${register.length} keys, ${register.reduce((s, r) => s + r.ops, 0)} ops: linearizable`
            : badKeys
                .map((r) =>
                  r.verdict === 'unknown'
                    ? `${r.key}: search gave up (undecided)`
                    : `${r.key}: not linearizable; minimal ops ${r.violation?.ops.map((o) => o.id).join(', ')}`,
                )
                .join('; '),
    },
    {
      name: 'list-append',
      passed: listBad.length === 0,
      detail:
        listBad.length === 0
          ? `${list.length} lists, ${list.reduce((s, k) => s + k.appends.ok, 0)} acknowledged appends all present, one order`
          : listBad
              .slice(0, 10)
              .map((v) => `${v.key} ${v.kind}: ${v.message} (ops ${v.ops.join(', ')})`)
              .join('; '),
    },
    {
      name: 'counter',
      passed: counterBad.length === 0,
      detail:
        counterBad.length === 0
          ? counter.map((k) => `${k.key} ${k.final} in [${k.acknowledged}, ${k.attempted}]`).join(', ')
          : counterBad
              .slice(0, 10)
              .map((v) => `${v.key} ${v.kind}: ${v.message}`)
              .join('; '),
    },
    {
      name: 'one leader per term',
      passed: termViolations.length === 0,
      detail:
        termViolations.length === 0
          ? `${input.monitor.samples.length} samples, terms with a leader: ${JSON.stringify(input.monitor.termsSeen())}, longest without a leader (ms): ${JSON.stringify(leaderless(input.monitor))}`
          : termViolations.map((v) => `${v.group} term ${v.term}: ${v.claims.join(', ')}`).join('; '),
    },
    {
      name: 'recovery',
      passed: input.recovery.ok,
      detail: `${
        input.recovery.ok
          ? `_system led, every namespace written ${input.recovery.ms} ms after the heal (bound ${input.recovery.boundMs} ms)`
          : `not every group recovered within ${input.recovery.boundMs} ms of the heal`
      }; ms per group: ${JSON.stringify(input.recovery.groups)}`,
    },
    {
      name: 'final reads',
      passed: input.finals.missing.length === 0,
      detail:
        input.finals.missing.length === 0
          ? `${input.finals.ok} actors read after the heal`
          : `no final read of ${input.finals.missing.join(', ')}`,
    },
    {
      name: 'replicas converge',
      passed: input.convergence.ok,
      detail: input.convergence.ok
        ? `every group led and every replica caught up ${input.convergence.ms} ms after the final reads`
        : `after ${input.convergence.ms} ms still not led or not caught up: ${input.convergence.behind.join(', ')}`,
    },
    ...(ws ? [wsCheck(ws)] : []),
  ]
  const count = (s: string) => ops.filter((o) => o.status === s).length
  const last = input.events[input.events.length - 1]
  return {
    scenario: input.scenario.name,
    description: input.scenario.description,
    seed: input.seed,
    nodes: input.nodes,
    seconds: input.seconds,
    replay: `npm run chaos -- --scenario ${input.scenario.name} --nodes ${input.nodes} --seconds ${input.seconds} --seed ${input.seed}`,
    passed: checks.every((c) => c.passed),
    checks,
    ops: { total: ops.length, ok: count('ok'), fail: count('fail'), info: count('info') },
    register: register.map((r) => ({
      key: r.key,
      verdict: r.verdict,
      ops: r.ops,
      ...(r.violation ? { violation: { at: r.violation.at, ops: r.violation.ops.map(reported) } } : {}),
    })),
    list,
    counter,
    ...(ws ? { ws } : {}),
    leaders: {
      termViolations,
      termsSeen: input.monitor.termsSeen(),
      leaderlessMaxMs: leaderless(input.monitor),
      samples: input.monitor.samples.length,
    },
    recovery: input.recovery,
    finalReads: input.finals,
    convergence: input.convergence,
    faults: input.windows,
    nodeEvents: input.nodeEvents,
    cluster: input.cluster.nodes.map((n) => ({ index: n.index, peer: n.peer, state: n.state })),
    clients: input.stats,
    violatingOps: [...violating].sort((a, b) => a - b),
    durationMs: last ? last.time : 0,
  }
}

/** Per group, the longest span without a leader in the monitor's samples. */
function leaderless(monitor: StatusMonitor): Record<string, number> {
  const out: Record<string, number> = {}
  for (const s of monitor.leaderSpans()) {
    const ms = s.node < 0 ? Math.round(s.to - s.from) : 0
    out[s.group] = Math.max(out[s.group] ?? 0, ms)
  }
  return out
}

/** The chat posts of the history, as the WebSocket check takes them. */
function wsPosts(ops: Operation[]): WsPost[] {
  return ops
    .filter((op) => op.f === 'post')
    .map((op) => ({ id: op.id, text: String(op.input), status: op.status, call: op.call, ret: op.ret }))
}

/** One line for the WebSocket check: violations, or what was checked; a subscriber that never caught up fails it. */
function wsCheck(ws: WsOrderResult & WsFinish): Check {
  const passed = ws.violations.length === 0 && ws.finalPost !== undefined && ws.behind.length === 0
  const figures = `${ws.subscribers} subscribers, ${ws.segments} segments, ${ws.connects} connects, ${ws.gone} EVENTS_GONE, ${ws.events} events at ${ws.positions} positions; acknowledged posts ${ws.posts.acked}: ${ws.posts.delivered} delivered, ${ws.posts.notCheckable} not checkable, ${ws.posts.lost} lost`
  const ending =
    ws.finalPost === undefined
      ? 'the closing post was never acknowledged'
      : ws.behind.length > 0
        ? `subscribers ${ws.behind.join(', ')} never received the closing post`
        : 'every subscriber received the closing post'
  return {
    name: 'websocket order',
    passed,
    detail:
      ws.violations.length === 0
        ? `${figures}; commit order, no gap or duplicate; ${ending}`
        : `${ws.violations
            .slice(0, 10)
            .map((v) => `${v.kind}: ${v.message}`)
            .join(
              '; ',
            )}${ws.violations.length > 10 ? `; ... (${ws.violations.length} in all)` : ''}; ${ending}`,
  }
}

/** Each subscriber's sockets, from connect to close (a socket still open at the end ends at its last record). */
function wsSessions(records: WsRecord[]): WsSession[] {
  const out: WsSession[] = []
  const open = new Map<number, WsSession>()
  for (const r of records) {
    if (r.kind === 'connect') {
      const s: WsSession = { sub: r.sub, node: r.node, from: r.time, to: r.time, events: 0, gone: false }
      if (r.after !== undefined) s.after = r.after
      open.set(r.sub, s)
      out.push(s)
      continue
    }
    const s = open.get(r.sub)
    if (!s) continue
    s.to = r.time
    if (r.kind === 'ready') s.ready = r.time
    else if (r.kind === 'event') s.events++
    else if (r.kind === 'gone') s.gone = true
    else if (r.kind === 'close') {
      s.close = `${r.code}${r.reason ? ` ${r.reason}` : ''}`
      open.delete(r.sub)
    }
  }
  return out
}
