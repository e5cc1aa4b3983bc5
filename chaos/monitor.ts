/**
 * Node status during a run: every node that is up is asked for its groups' Raft status
 * (`GET /v1/chaos/groups`: role, term, leader) every `intervalMs`. From the samples: at most one
 * leader per term per group (a node claiming leadership, or a follower naming its term's leader),
 * and each group's leader over time for the timeline.
 */
import type { ChaosCluster } from './cluster.js'
import { getJson } from './http.js'

/** One group's status as one node reported it. */
export interface GroupSample {
  time: number
  node: number
  group: string
  role: string
  term: number
  lead: string
  commit: number
  applied: number
  /** On a leader: each follower's replication progress (evidence when replicas do not converge). */
  progress?: Record<string, { match: number; next: number; state: string }>
}

/** Two leaders claimed for one term of one group. */
export interface TermViolation {
  group: string
  term: number
  leaders: string[]
  /** Who said so: `<node index>:<role>` per claim. */
  claims: string[]
}

/** A stretch of time during which one node (or none) led a group, as the samples saw it. */
export interface LeaderSpan {
  group: string
  from: number
  to: number
  /** Node index of the leader, or -1 for none seen. */
  node: number
  term: number
}

/** Samples kept at most (a run of minutes at 4 polls a second on 5 nodes stays far below). */
const SAMPLES_MAX = 2_000_000

export class StatusMonitor {
  readonly samples: GroupSample[] = []
  private timer: NodeJS.Timeout | undefined
  private polling = false

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly now: () => number,
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.intervalMs)
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** One round: every node that is up, at once; a node that does not answer in time is skipped. */
  async poll(): Promise<void> {
    if (this.polling) return
    this.polling = true
    try {
      await Promise.all(
        this.cluster.up().map(async (node) => {
          const time = this.now()
          const got = (await getJson(`${node.url}/v1/chaos/groups`, 1_000).catch(() => undefined)) as
            | {
                groups: Array<{
                  group: string
                  role: string
                  term: number
                  lead: string
                  commit: number
                  applied: number
                  progress?: GroupSample['progress']
                }>
              }
            | undefined
          if (!got || this.samples.length > SAMPLES_MAX) return
          for (const g of got.groups) {
            this.samples.push({
              time,
              node: node.index,
              group: g.group,
              role: g.role,
              term: g.term,
              lead: g.lead,
              commit: g.commit,
              applied: g.applied,
              ...(g.progress ? { progress: g.progress } : {}),
            })
          }
        }),
      )
    } finally {
      this.polling = false
    }
  }

  /** Terms in which two different leaders were seen (leaders' own claims and followers' views). */
  termViolations(): TermViolation[] {
    const byTerm = new Map<string, { leaders: Set<string>; claims: Set<string> }>()
    for (const s of this.samples) {
      const leader = s.role === 'leader' ? this.cluster.nodes[s.node]!.peer : s.lead
      if (!leader) continue
      const k = `${s.group}\u0000${s.term}`
      let e = byTerm.get(k)
      if (!e) byTerm.set(k, (e = { leaders: new Set(), claims: new Set() }))
      e.leaders.add(leader)
      e.claims.add(`${s.node}:${s.role}->${this.nodeOf(leader)}`)
    }
    const out: TermViolation[] = []
    for (const [k, e] of byTerm) {
      if (e.leaders.size < 2) continue
      const [group, term] = k.split('\u0000') as [string, string]
      out.push({ group, term: Number(term), leaders: [...e.leaders], claims: [...e.claims] })
    }
    return out
  }

  /** Distinct (group, term) pairs seen with a leader: how many elections the run caused. */
  termsSeen(): Record<string, number> {
    const terms = new Map<string, Set<number>>()
    for (const s of this.samples) {
      if (s.role !== 'leader') continue
      let t = terms.get(s.group)
      if (!t) terms.set(s.group, (t = new Set()))
      t.add(s.term)
    }
    return Object.fromEntries([...terms].map(([g, t]) => [g, t.size]))
  }

  /**
   * Each group's leader over time: per polling round the node that claims leadership in the
   * highest term (none when no node does); consecutive rounds with the same leader merge.
   */
  leaderSpans(): LeaderSpan[] {
    const rounds = new Map<number, GroupSample[]>()
    for (const s of this.samples) {
      const r = Math.floor(s.time / this.intervalMs)
      let list = rounds.get(r)
      if (!list) rounds.set(r, (list = []))
      list.push(s)
    }
    const groups = [...new Set(this.samples.map((s) => s.group))].sort()
    const spans: LeaderSpan[] = []
    const open = new Map<string, LeaderSpan>()
    for (const r of [...rounds.keys()].sort((a, b) => a - b)) {
      const list = rounds.get(r)!
      const time = Math.min(...list.map((s) => s.time))
      for (const group of groups) {
        const leaders = list.filter((s) => s.group === group && s.role === 'leader')
        const best = leaders.reduce<GroupSample | undefined>(
          (a, s) => (!a || s.term > a.term ? s : a),
          undefined,
        )
        const node = best?.node ?? -1
        const cur = open.get(group)
        if (cur && cur.node === node) {
          cur.to = time + this.intervalMs
          continue
        }
        if (cur) cur.to = time
        const span = { group, from: time, to: time + this.intervalMs, node, term: best?.term ?? 0 }
        spans.push(span)
        open.set(group, span)
      }
    }
    return spans
  }

  private nodeOf(peer: string): string {
    const n = this.cluster.byPeer(peer)
    return n ? String(n.index) : peer.slice(-6)
  }
}
