/**
 * `actormesh status`: one node's view of the cluster — itself and `_system`, the members it hears,
 * the namespaces with their leaders and replica health — as text for a terminal. Pure: the CLI
 * fetches the node's `GET /v1/status`, `/v1/members` and `/v1/namespaces` and passes the documents in.
 */

/** `GET /v1/status`. */
export interface StatusDoc {
  peer: string
  system: { joined: boolean; leader: string; term: number; voters: string[]; learners: string[] }
}

/** One member in `GET /v1/members` (`rttMs` is absent until a ping was measured). */
export interface MemberDoc {
  peer: string
  state: string
  gateway: string
  rttMs?: number | null
}

/** `GET /v1/members`: this node, and the other members it hears. */
export interface MembersDoc {
  self: { peer: string; addrs: string[] }
  members: MemberDoc[]
}

/**
 * One namespace in `GET /v1/namespaces`: the catalog record, `leader` (empty when the node knows
 * none) and `module`, the version a replica hosted here has applied (null when none or not hosted).
 */
export interface NamespaceDoc {
  name: string
  replicationFactor: number
  voters: string[]
  learners: string[]
  leader: string
  moduleVersion?: number
  moduleHash?: string
  module?: { version: number; hash: string } | null
}

/** `GET /v1/namespaces`. */
export interface NamespacesDoc {
  namespaces: NamespaceDoc[]
}

/** The three documents a status report is made from. */
export interface StatusDocs {
  status: StatusDoc
  members: MembersDoc
  namespaces: NamespacesDoc
}

/**
 * Checks that `docs` has the fields the report reads (they come over HTTP from a node that may run
 * another version); throws a `TypeError` naming the first missing one.
 */
export function checkStatusDocs(docs: {
  status: unknown
  members: unknown
  namespaces: unknown
}): StatusDocs {
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new TypeError(`Cannot read the node's answer: ${what} is missing or malformed`)
  }
  const st = docs.status as Partial<StatusDoc> | null
  need(typeof st?.peer === 'string', "GET /v1/status 'peer'")
  need(typeof st?.system === 'object' && st.system !== null, "GET /v1/status 'system'")
  const members = docs.members as Partial<MembersDoc> | null
  need(Array.isArray(members?.members), "GET /v1/members 'members'")
  const namespaces = docs.namespaces as Partial<NamespacesDoc> | null
  need(Array.isArray(namespaces?.namespaces), "GET /v1/namespaces 'namespaces'")
  return docs as StatusDocs
}

/** A peer id cut to its last 8 characters (base58 tails are distinct enough to tell nodes apart). */
export function shortPeer(peer: string): string {
  return peer.length > 12 ? `…${peer.slice(-8)}` : peer
}

/**
 * A namespace's replica health as one node sees it: "no leader" when the node hosts a replica
 * and knows no leader; "repairing" while a learner catches up; "degraded (n/m live)" when fewer
 * voters are alive than the replication factor asks for (m is the larger of the two); else "ok".
 */
export function replicaHealth(ns: NamespaceDoc, isAlive: (peer: string) => boolean, self: string): string {
  const hostedHere = ns.voters.includes(self) || ns.learners.includes(self)
  if (hostedHere && !ns.leader) return 'no leader'
  const live = ns.voters.filter(isAlive).length
  const wanted = Math.max(ns.voters.length, ns.replicationFactor)
  const counts = `${live}/${wanted} live`
  if (ns.learners.length > 0) return live < wanted ? `repairing (${counts})` : 'repairing'
  if (live < wanted) return `degraded (${counts})`
  return 'ok'
}

/** The report `actormesh status` prints; `url` is the node's gateway as the user gave it. */
export function formatStatus(docs: StatusDocs, url?: string): string {
  const self = docs.status.peer
  const alive = new Set([self, ...docs.members.members.filter((m) => m.state === 'alive').map((m) => m.peer)])
  const isAlive = (peer: string) => alive.has(peer)
  return [
    ...nodeSection(docs.status, url),
    '',
    ...membersSection(docs.members, self, url),
    '',
    ...namespacesSection(docs.namespaces.namespaces, isAlive, self),
    '',
  ].join('\n')
}

function nodeSection(st: StatusDoc, url: string | undefined): string[] {
  const lines = [`Node ${st.peer}${url ? ` at ${url}` : ''}`]
  const sys = st.system
  if (!sys.joined) {
    lines.push('  _system   not joined yet (asking the seeds to let it in)')
    return lines
  }
  const leader = !sys.leader
    ? 'none'
    : sys.leader === st.peer
      ? `${shortPeer(sys.leader)} (this node)`
      : shortPeer(sys.leader)
  lines.push(`  _system   leader ${leader}, term ${sys.term}`)
  lines.push(`            voters   ${peers(sys.voters)}`)
  lines.push(`            learners ${peers(sys.learners)}`)
  return lines
}

function membersSection(doc: MembersDoc, self: string, url: string | undefined): string[] {
  const others = [...doc.members].sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  const rows = [
    [shortPeer(self), 'self', url ?? '-', '-'],
    ...others.map((m) => [
      shortPeer(m.peer),
      m.state,
      m.gateway || '-',
      typeof m.rttMs === 'number' ? m.rttMs.toFixed(1) : '-',
    ]),
  ]
  return [
    `Members (${others.length} besides this node)`,
    ...table(['PEER', 'STATE', 'GATEWAY', 'RTT ms'], rows, '  '),
  ]
}

function namespacesSection(list: NamespaceDoc[], isAlive: (peer: string) => boolean, self: string): string[] {
  const head = `Namespaces (${list.length})`
  if (list.length === 0) return [head, '  (none)']
  const sorted = [...list].sort(byName)
  let unknown = false
  const rows = sorted.map((ns) => {
    const hostedHere = ns.voters.includes(self) || ns.learners.includes(self)
    if (!ns.leader && !hostedHere) unknown = true
    const leader = ns.leader ? shortPeer(ns.leader) : hostedHere ? 'none' : 'unknown'
    return [
      ns.name,
      String(ns.replicationFactor),
      leader,
      String(ns.voters.length),
      String(ns.learners.length),
      moduleText(ns, hostedHere),
      replicaHealth(ns, isAlive, self),
    ]
  })
  const lines = [
    head,
    ...table(['NAME', 'RF', 'LEADER', 'VOTERS', 'LEARNERS', 'MODULE', 'HEALTH'], rows, '  '),
  ]
  if (unknown) lines.push('  unknown: this node hosts no replica of it; ask a node that does')
  return lines
}

/** The hosted replica's module, else the catalog's record of it; 'unknown' where no replica is hosted. */
function moduleText(ns: NamespaceDoc, hostedHere: boolean): string {
  const m =
    ns.module ??
    (ns.moduleVersion && ns.moduleHash ? { version: ns.moduleVersion, hash: ns.moduleHash } : null)
  if (m) return `v${m.version} ${m.hash.slice(0, 8)}`
  return hostedHere ? 'none' : 'unknown'
}

function peers(list: string[]): string {
  return list.length === 0 ? 'none' : list.map(shortPeer).join(' ')
}

/** Left-aligned columns two spaces apart (the last one not padded), each line after `indent`. */
export function table(header: string[], rows: string[][], indent = ''): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    `${indent}${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd()
  return [line(header), ...rows.map(line)]
}

/** Orders records by `name` (code point order, as the catalog keys them). */
export function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}
