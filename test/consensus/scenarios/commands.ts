/**
 * The commands of scenario scripts. Each takes its arguments (positional words and `key=value`
 * options) and returns the lines it prints. See docs/architecture.md, "Scenario scripts".
 */
import { type NodeId, type RaftConfig, Role } from '../../../consensus/index.js'
import type { ScenarioCluster } from './cluster.js'
import { CONF_CHANGE_NAMES, formatConf, formatEntry, formatMessage, formatStatus } from './format.js'

const enc = new TextEncoder()

/** A parsed command line: `name word word key=value ...`. */
export interface Command {
  name: string
  words: string[]
  options: Map<string, string>
}

export function parseCommand(line: string): Command {
  const [name = '', ...rest] = line.trim().split(/\s+/)
  const words: string[] = []
  const options = new Map<string, string>()
  for (const token of rest) {
    const eq = token.indexOf('=')
    if (eq > 0) options.set(token.slice(0, eq), token.slice(eq + 1))
    else words.push(token)
  }
  return { name, words, options }
}

/** `(1,2,3)` or `1,2,3` as a list of node ids; `()` is empty. */
function idList(value: string): NodeId[] {
  const inner = value.replace(/^\(/, '').replace(/\)$/, '')
  return inner === '' ? [] : inner.split(',').map((s) => s.trim())
}

function numberOption(c: Command, key: string): number | undefined {
  const v = c.options.get(key)
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n)) throw new TypeError(`Cannot run '${c.name}': option '${key}' is not an integer`)
  return n
}

function boolOption(c: Command, key: string): boolean | undefined {
  const v = c.options.get(key)
  if (v === undefined) return undefined
  if (v !== 'true' && v !== 'false')
    throw new TypeError(`Cannot run '${c.name}': option '${key}' is not a boolean`)
  return v === 'true'
}

function word(c: Command, i: number): string {
  const w = c.words[i]
  if (w === undefined) throw new TypeError(`Cannot run '${c.name}': argument ${i + 1} is missing`)
  return w
}

function option(c: Command, key: string): string {
  const v = c.options.get(key)
  if (v === undefined) throw new TypeError(`Cannot run '${c.name}': option '${key}' is missing`)
  return v
}

/** Options of `add-nodes` that map onto RaftConfig. */
function raftOptions(c: Command): Omit<RaftConfig, 'id' | 'storage' | 'random'> {
  const config: Omit<RaftConfig, 'id' | 'storage' | 'random'> = {}
  const set = <K extends keyof typeof config>(key: K, value: (typeof config)[K] | undefined) => {
    if (value !== undefined) config[key] = value
  }
  set('preVote', boolOption(c, 'prevote'))
  set('checkQuorum', boolOption(c, 'checkquorum'))
  const readOnly = c.options.get('readonly')
  if (readOnly !== undefined && readOnly !== 'safe' && readOnly !== 'lease')
    throw new TypeError(`Cannot run 'add-nodes': readonly '${readOnly}' is not 'safe' or 'lease'`)
  set('readOnly', readOnly)
  set('electionTicks', numberOption(c, 'electionticks'))
  set('heartbeatTicks', numberOption(c, 'heartbeatticks'))
  set('quiesceAfterTicks', numberOption(c, 'quiesce'))
  set('maxInflightAppends', numberOption(c, 'maxinflight'))
  set('maxMessageBytes', numberOption(c, 'maxmsgbytes'))
  set('maxUncommittedBytes', numberOption(c, 'maxuncommittedbytes'))
  return config
}

/** `add-nodes N [voters=(..)] [learners=(..)] [seed=S] [raft options]`: ids continue from the last. */
function addNodes(cluster: ScenarioCluster, c: Command): string[] {
  const count = Number(word(c, 0))
  const voters = c.options.has('voters') ? idList(option(c, 'voters')) : undefined
  const learners = c.options.has('learners') ? idList(option(c, 'learners')) : undefined
  const conf = voters || learners ? { voters: voters ?? [], learners: learners ?? [] } : undefined
  const seed = numberOption(c, 'seed') ?? 1
  const config = raftOptions(c)
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const id = String(cluster.nodes.size + 1)
    cluster.add(id, conf, config, seed * 1000 + Number(id))
    out.push(`${id}: ${conf ? formatConf(conf) : 'empty (joins by conf change)'}`)
  }
  return out
}

/** `tick N [times]`, `tick-election N`, `tick-heartbeat N`: tick one node, print nothing else. */
function tick(cluster: ScenarioCluster, id: NodeId, times: number): string[] {
  const raw = cluster.raw(id)
  for (let i = 0; i < times; i++) raw.tick()
  return ['ok']
}

/** `tick-all [times]`: ticks every running node once, then stabilizes; repeats `times` times. */
function tickAll(cluster: ScenarioCluster, times: number): string[] {
  const out: string[] = []
  for (let t = 1; t <= times; t++) {
    const ids = cluster.ids().filter((id) => cluster.node(id).raw)
    for (const id of ids) cluster.raw(id).tick()
    const round: string[] = []
    cluster.stabilize(cluster.ids(), round)
    if (round.length > 0) out.push(`tick ${t}:`, ...round)
  }
  return out.length > 0 ? out : ['ok']
}

function status(cluster: ScenarioCluster, id: NodeId): string[] {
  const n = cluster.node(id)
  if (!n.raw) return ['crashed']
  return formatStatus(n.raw.status(), n.appliedIndex)
}

/** `raft-log N`: the persisted log (what survives a crash). */
function raftLog(cluster: ScenarioCluster, id: NodeId): string[] {
  const s = cluster.node(id).storage
  const out: string[] = []
  const snap = s.snapshot().meta
  if (snap.index > 0) out.push(`snapshot index=${snap.index} term=${snap.term} ${formatConf(snap.conf)}`)
  const hard = s.getHardState()
  out.push(`hard: term=${hard.term} vote=${hard.vote || 'none'} commit=${hard.commit}`)
  const entries = s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER)
  if (entries.length === 0) out.push('log is empty')
  for (const e of entries) out.push(formatEntry(e))
  return out
}

/** `state`: every node's state machine (applied payloads), to compare replicas. */
function state(cluster: ScenarioCluster): string[] {
  return cluster.ids().map((id) => {
    const n = cluster.node(id)
    return `${id}: applied=${n.appliedIndex} data=${JSON.stringify(n.applied.map((a) => a.data))}`
  })
}

/** `compact N INDEX`: snapshot the state machine at INDEX (≤ applied) and drop the log up to it. */
function compact(cluster: ScenarioCluster, id: NodeId, index: number): string[] {
  const n = cluster.node(id)
  if (index > n.appliedIndex)
    throw new RangeError(`Cannot compact node '${id}' to ${index}: applied is ${n.appliedIndex}`)
  const conf = cluster.raw(id).status().conf
  const snap = n.storage.createSnapshot(index, conf, n.snapshotData(index))
  n.storage.compact(index)
  return [`snapshot index=${snap.meta.index} term=${snap.meta.term}; first index ${n.storage.firstIndex()}`]
}

function pending(cluster: ScenarioCluster): string[] {
  return cluster.queue.length === 0 ? ['no messages in flight'] : cluster.queue.map(formatMessage)
}

type Handler = (cluster: ScenarioCluster, c: Command) => string[]

/** Every command, by name. Proposals and reads print `ok` or the error they raised. */
const COMMANDS: Record<string, Handler> = {
  'add-nodes': addNodes,
  campaign: (cl, c) => {
    cl.raw(word(c, 0)).campaign()
    return ['ok']
  },
  tick: (cl, c) => tick(cl, word(c, 0), Number(c.words[1] ?? 1)),
  'tick-election': (cl, c) => tick(cl, word(c, 0), electionTicks(cl, word(c, 0))),
  'tick-heartbeat': (cl, c) => tick(cl, word(c, 0), cl.node(word(c, 0)).config.heartbeatTicks ?? 1),
  'tick-all': (cl, c) => tickAll(cl, Number(c.words[0] ?? 1)),
  propose: (cl, c) => {
    const raw = cl.raw(word(c, 0))
    for (const data of c.words.slice(1)) raw.propose(enc.encode(data))
    return ['ok']
  },
  'propose-conf-change': (cl, c) => {
    const type = CONF_CHANGE_NAMES[word(c, 1)]
    if (type === undefined)
      throw new TypeError(`Cannot run 'propose-conf-change': unknown type '${word(c, 1)}'`)
    cl.raw(word(c, 0)).proposeConfChange({ type, node: word(c, 2) })
    return ['ok']
  },
  'read-index': (cl, c) => {
    cl.raw(word(c, 0)).readIndex(enc.encode(word(c, 1)))
    return ['ok']
  },
  'transfer-leadership': (cl, c) => {
    cl.raw(option(c, 'from')).transferLeadership(option(c, 'to'))
    return ['ok']
  },
  'report-snapshot': (cl, c) => {
    cl.raw(option(c, 'from')).reportSnapshot(option(c, 'to'), boolOption(c, 'ok') ?? true)
    return ['ok']
  },
  'report-unreachable': (cl, c) => {
    cl.raw(option(c, 'from')).reportUnreachable(option(c, 'to'))
    return ['ok']
  },
  'process-ready': (cl, c) => {
    const out: string[] = []
    for (const id of c.words) if (!cl.processReady(id, out)) out.push(`> ${id} has no Ready`)
    return out
  },
  'deliver-msgs': (cl, c) => {
    const out: string[] = []
    const type = c.options.get('type')
    const from = c.options.get('from')
    const filter = (m: { type: number; from: string }) =>
      (type === undefined || formatMessage(m as never).split(' ')[1] === type) &&
      (from === undefined || m.from === from)
    const ids = c.words.length > 0 ? c.words : cl.ids()
    for (const id of ids) cl.deliver(id, out, boolOption(c, 'drop') ?? false, filter)
    return out.length > 0 ? out : ['no messages']
  },
  stabilize: (cl, c) => {
    const out: string[] = []
    cl.stabilize(c.words.length > 0 ? c.words : cl.ids(), out)
    return out.length > 0 ? out : ['ok']
  },
  'in-flight': (cl) => pending(cl),
  partition: (cl, c) => {
    const groups = c.words
      .join(' ')
      .split('|')
      .map((g) =>
        g
          .trim()
          .split(/[\s,]+/)
          .filter(Boolean),
      )
    cl.partition(groups)
    return [`cut: ${cl.cutLinks().join(' ')}`]
  },
  isolate: (cl, c) => {
    const id = word(c, 0)
    cl.partition([[id]])
    return [`cut: ${cl.cutLinks().join(' ')}`]
  },
  'cut-link': (cl, c) => {
    cl.cutLink(option(c, 'from'), option(c, 'to'))
    return [`cut: ${cl.cutLinks().join(' ')}`]
  },
  heal: (cl) => {
    cl.heal()
    return ['ok']
  },
  crash: (cl, c) => {
    cl.crash(word(c, 0))
    return ['ok']
  },
  restart: (cl, c) => {
    cl.restart(word(c, 0))
    return status(cl, word(c, 0))
  },
  compact: (cl, c) => compact(cl, word(c, 0), Number(word(c, 1))),
  status: (cl, c) => status(cl, word(c, 0)),
  'raft-log': (cl, c) => raftLog(cl, word(c, 0)),
  state: (cl) => state(cl),
  leaders: (cl) => {
    const ids = cl.ids().filter((id) => cl.node(id).raw?.status().role === Role.Leader)
    return [
      ids.length === 0 ? 'none' : ids.map((id) => `${id} (term ${cl.raw(id).status().term})`).join(', '),
    ]
  },
}

function electionTicks(cluster: ScenarioCluster, id: NodeId): number {
  return cluster.node(id).config.electionTicks ?? 10
}

/** Runs one command line against `cluster` and returns its output lines (never empty). */
export function runCommand(cluster: ScenarioCluster, line: string): string[] {
  const c = parseCommand(line)
  const handler = COMMANDS[c.name]
  if (!handler) throw new TypeError(`Cannot run '${c.name}': unknown command`)
  return handler(cluster, c)
}
