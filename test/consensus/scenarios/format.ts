/**
 * Compact, readable text for the things a scenario prints: entries, messages, Readys and status.
 * The format is part of every script's expected output, so it changes only deliberately.
 *
 * Entries print as `term/index Type data` (etcd's order), e.g. `1/3 EntryNormal "x"` or
 * `2/5 EntryConfChange add-learner 4`.
 */
import {
  ConfChangeType,
  type ConfState,
  decodeConfChange,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  ProgressState,
  type Ready,
  Role,
  type Snapshot,
  type Status,
} from '../../../consensus/index.js'

const dec = new TextDecoder()

/** Message type names without the `Msg` prefix, indexed by the numeric type. */
const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(MessageType).map(([name, value]) => [value, name]),
)
const ROLE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Role).map(([name, value]) => [value, name]),
)
const PROGRESS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ProgressState).map(([name, value]) => [value, name]),
)

/** The text name of a conf change type as scripts write it. */
export const CONF_CHANGE_NAMES: Record<string, ConfChangeType> = {
  'add-node': ConfChangeType.AddNode,
  'add-learner': ConfChangeType.AddLearner,
  'remove-node': ConfChangeType.RemoveNode,
}

export function roleName(role: Role): string {
  return ROLE_NAMES[role] ?? `Role(${role})`
}

export function quote(bytes: Uint8Array): string {
  return JSON.stringify(dec.decode(bytes))
}

export function formatConf(conf: ConfState): string {
  return `voters=(${conf.voters.join(' ')}) learners=(${conf.learners.join(' ')})`
}

export function formatEntry(e: Entry): string {
  if (e.type === EntryType.ConfChange) {
    const cc = decodeConfChange(e.data)
    const name = Object.keys(CONF_CHANGE_NAMES).find((k) => CONF_CHANGE_NAMES[k] === cc.type)
    return `${e.term}/${e.index} EntryConfChange ${name} ${cc.node}`
  }
  return `${e.term}/${e.index} EntryNormal ${quote(e.data)}`
}

export function formatEntries(entries: Entry[]): string {
  return `[${entries.map(formatEntry).join(', ')}]`
}

export function formatSnapshot(s: Snapshot): string {
  return `index=${s.meta.index} term=${s.meta.term} ${formatConf(s.meta.conf)} data=${quote(s.data)}`
}

/** One message on one line; only the fields its type uses (unused fields are always zero). */
export function formatMessage(m: Message): string {
  const parts = [`${m.from}->${m.to}`, TYPE_NAMES[m.type] ?? `Type(${m.type})`, `term=${m.term}`]
  switch (m.type) {
    case MessageType.Vote:
    case MessageType.PreVote:
      parts.push(`logterm=${m.logTerm}`, `index=${m.index}`)
      if (m.context && m.context.byteLength > 0) parts.push(`ctx=${quote(m.context)}`)
      break
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      if (m.reject) parts.push('rejected')
      break
    case MessageType.App:
      parts.push(`logterm=${m.logTerm}`, `index=${m.index}`, `commit=${m.commit}`)
      parts.push(`entries=${formatEntries(m.entries)}`)
      break
    case MessageType.AppResp:
      parts.push(`index=${m.index}`)
      if (m.reject) parts.push(`rejected hint=${m.rejectHint} hintterm=${m.logTerm}`)
      break
    case MessageType.Heartbeat:
      parts.push(`commit=${m.commit}`)
      if (m.context) parts.push(`ctx=${quote(m.context)}`)
      if (m.quiesce) parts.push('quiesce')
      break
    case MessageType.HeartbeatResp:
      if (m.context) parts.push(`ctx=${quote(m.context)}`)
      break
    case MessageType.Snap:
      if (m.snapshot) parts.push(`snapshot=(${formatSnapshot(m.snapshot)})`)
      break
    case MessageType.Prop:
      parts.push(`entries=${formatEntries(m.entries)}`)
      break
    case MessageType.ReadIndex:
      parts.push(`ctx=${quote(m.context ?? new Uint8Array())}`)
      break
    case MessageType.ReadIndexResp:
      parts.push(`index=${m.index}`, `ctx=${quote(m.context ?? new Uint8Array())}`)
      break
  }
  return parts.join(' ')
}

/** A Ready as indented lines, only the parts it carries, in the order they must be handled. */
export function formatReady(rd: Ready): string[] {
  const out: string[] = []
  if (rd.softState)
    out.push(`  soft: lead=${rd.softState.lead || 'none'} role=${roleName(rd.softState.role)}`)
  if (rd.hardState) {
    const h = rd.hardState
    out.push(`  hard: term=${h.term} vote=${h.vote || 'none'} commit=${h.commit}`)
  }
  if (rd.snapshot) out.push(`  snapshot: ${formatSnapshot(rd.snapshot)}`)
  if (rd.entries.length > 0) {
    out.push('  entries:')
    for (const e of rd.entries) out.push(`    ${formatEntry(e)}`)
  }
  if (rd.messages.length > 0) {
    out.push('  messages:')
    for (const m of rd.messages) out.push(`    ${formatMessage(m)}`)
  }
  if (rd.committedEntries.length > 0) {
    out.push('  committed:')
    for (const e of rd.committedEntries) out.push(`    ${formatEntry(e)}`)
  }
  for (const r of rd.readStates) out.push(`  read-state: index=${r.index} ctx=${quote(r.context)}`)
  if (rd.mustSync) out.push('  must-sync')
  return out
}

/** `status` output: the node's own state, then (on a leader) one line per member's progress. */
export function formatStatus(s: Status, appliedIndex: number): string[] {
  const out = [
    `term=${s.term} vote=${s.vote || 'none'} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}`,
    `role=${roleName(s.role)} lead=${s.lead || 'none'} quiesced=${s.quiesced} transferee=${s.leadTransferee || 'none'}`,
    formatConf(s.conf),
  ]
  if (appliedIndex !== s.applied) out.push(`state machine applied=${appliedIndex}`)
  if (!s.progress) return out
  for (const id of Object.keys(s.progress).sort(byNodeId)) {
    const p = s.progress[id]!
    const flags = [p.isLearner ? 'learner' : '', p.recentActive ? 'active' : ''].filter(Boolean)
    out.push(
      `${id}: ${PROGRESS_NAMES[p.state]} match=${p.match} next=${p.next} inflight=${p.inflight}${flags.length > 0 ? ` ${flags.join(' ')}` : ''}`,
    )
  }
  return out
}

/** Node ids in scripts are small numbers: sort them numerically, then by text. */
export function byNodeId(a: string, b: string): number {
  const na = Number(a)
  const nb = Number(b)
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb
  return a < b ? -1 : a > b ? 1 : 0
}
