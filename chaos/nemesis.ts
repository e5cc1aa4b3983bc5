/**
 * Nemeses: the faults a scenario injects, each a pair of inject and heal. A scenario runs cycles
 * of calm then fault until its time is up, and records every fault window for the timeline.
 */
import type { FaultTable } from '../node/chaos.js'
import type { ChaosCluster, ChaosNode } from './cluster.js'
import { getJson, sendJson } from './http.js'
import type { Random } from './random.js'

/** What a nemesis may use. */
export interface NemesisContext {
  cluster: ChaosCluster
  rnd: Random
  /** Namespaces of the workloads (leader-targeting faults pick one of these or `_system`). */
  namespaces: string[]
  /** Milliseconds since the run began. */
  now: () => number
  /** Nodes up at most (churn adds one only below it). */
  nodesMax: number
}

/** A fault in place, and how to take it away. */
export interface Injected {
  /** What exactly was done, for the report ("isolated n2 (leader of chaos-reg)"). */
  detail: string
  heal: () => Promise<void>
}

/** One kind of fault. `inject` resolves undefined when it cannot apply now (e.g. no leader known). */
export interface Fault {
  name: string
  description: string
  inject(ctx: NemesisContext): Promise<Injected | undefined>
}

/** A fault window as the timeline shows it. */
export interface FaultWindow {
  fault: string
  detail: string
  start: number
  end: number
}

/** Gives every node that is up the block list `connected` implies; returns the healer. */
async function partition(
  ctx: NemesisContext,
  connected: (a: ChaosNode, b: ChaosNode) => boolean,
): Promise<() => Promise<void>> {
  const nodes = ctx.cluster.nodes.filter((n) => n.peer)
  await Promise.all(
    ctx.cluster.up().map((a) => {
      const table: FaultTable = {
        block: nodes.filter((b) => b !== a && !connected(a, b)).map((b) => b.peer),
        delay: {},
        drop: {},
      }
      return ctx.cluster.setFaults(a, table).catch(() => {})
    }),
  )
  return () => ctx.cluster.healNetwork()
}

/**
 * The node that leads `group` in the highest term any node reports (asking every node that is up),
 * or undefined when none does.
 */
export async function leaderOf(cluster: ChaosCluster, group: string): Promise<ChaosNode | undefined> {
  let best: { node: ChaosNode; term: number } | undefined
  await Promise.all(
    cluster.up().map(async (n) => {
      const got = (await getJson(`${n.url}/v1/chaos/groups`, 1_000).catch(() => undefined)) as
        | { groups: Array<{ group: string; role: string; term: number }> }
        | undefined
      const g = got?.groups.find((x) => x.group === group && x.role === 'leader')
      if (g && (!best || g.term > best.term)) best = { node: n, term: g.term }
    }),
  )
  return best?.node
}

const label = (n: ChaosNode) => `n${n.index}`

async function someLeader(ctx: NemesisContext): Promise<{ node: ChaosNode; group: string } | undefined> {
  const group = ctx.rnd.pick([...ctx.namespaces, '_system'])
  const node = await leaderOf(ctx.cluster, group)
  return node ? { node, group } : undefined
}

export const faults: Record<string, Fault> = {
  halves: {
    name: 'halves',
    description: 'split the nodes into two random halves that cannot reach each other',
    async inject(ctx) {
      const shuffled = ctx.rnd.shuffle(ctx.cluster.up())
      const small = new Set(shuffled.slice(0, Math.floor(shuffled.length / 2)))
      const heal = await partition(ctx, (a, b) => small.has(a) === small.has(b))
      return {
        detail: `{${[...small].map(label)}} | {${shuffled.filter((n) => !small.has(n)).map(label)}}`,
        heal,
      }
    },
  },
  'isolate-leader': {
    name: 'isolate-leader',
    description: "cut a group's leader (a workload namespace's or _system's) off from every other node",
    async inject(ctx) {
      const found = await someLeader(ctx)
      if (!found) return undefined
      const heal = await partition(ctx, (a, b) => a !== found.node && b !== found.node)
      return { detail: `isolated ${label(found.node)} (leader of ${found.group})`, heal }
    },
  },
  'majority-ring': {
    name: 'majority-ring',
    description:
      'every node sees a majority, but no two see the same one: nodes on a ring, each reaching its nearest neighbours (with 3 or 4 nodes: a bridge, one node reaching both sides)',
    async inject(ctx) {
      const ring = ctx.rnd.shuffle(ctx.cluster.up())
      const n = ring.length
      const pos = new Map(ring.map((node, i) => [node, i]))
      let connected: (a: ChaosNode, b: ChaosNode) => boolean
      let detail: string
      if (n >= 5) {
        // A majority is floor(n/2) + 1 nodes: itself and `reach` neighbours on each side.
        const reach = Math.ceil(Math.floor(n / 2) / 2)
        connected = (a, b) => {
          const d = Math.abs(pos.get(a)! - pos.get(b)!)
          return Math.min(d, n - d) <= reach
        }
        detail = `ring ${ring.map(label).join('-')} (each reaches ±${reach})`
      } else {
        const bridge = ring[0]!
        const left = new Set(ring.slice(1, 1 + Math.ceil((n - 1) / 2)))
        connected = (a, b) => a === bridge || b === bridge || left.has(a) === left.has(b)
        detail = `bridge ${label(bridge)} between {${[...left].map(label)}} and {${ring.filter((x) => x !== bridge && !left.has(x)).map(label)}}`
      }
      return { detail, heal: await partition(ctx, connected) }
    },
  },
  'kill-random': {
    name: 'kill-random',
    description: 'kill -9 a random node, restart it on the same data directory when the fault ends',
    async inject(ctx) {
      const victim = ctx.rnd.pick(ctx.cluster.up())
      await ctx.cluster.kill(victim)
      return { detail: `killed ${label(victim)}`, heal: () => ctx.cluster.restart(victim) }
    },
  },
  'kill-leader': {
    name: 'kill-leader',
    description: "kill -9 a group's leader, restart it when the fault ends",
    async inject(ctx) {
      const found = await someLeader(ctx)
      if (!found) return undefined
      await ctx.cluster.kill(found.node)
      return {
        detail: `killed ${label(found.node)} (leader of ${found.group})`,
        heal: () => ctx.cluster.restart(found.node),
      }
    },
  },
  'pause-leader': {
    name: 'pause-leader',
    description:
      "SIGSTOP a group's leader (it keeps its sockets but says nothing), SIGCONT when the fault ends",
    async inject(ctx) {
      const found = await someLeader(ctx)
      if (!found) return undefined
      ctx.cluster.pause(found.node)
      return {
        detail: `paused ${label(found.node)} (leader of ${found.group})`,
        heal: async () => ctx.cluster.resume(found.node),
      }
    },
  },
  flaky: {
    name: 'flaky',
    description: 'every link loses 5–30% of its frames and delays the rest by 0–150 ms, per direction',
    async inject(ctx) {
      const nodes = ctx.cluster.up()
      const parts: string[] = []
      await Promise.all(
        nodes.map((a) => {
          const table: FaultTable = { block: [], delay: {}, drop: {} }
          for (const b of nodes) {
            if (b === a) continue
            table.drop[b.peer] = ctx.rnd.between(5, 30) / 100
            table.delay[b.peer] = ctx.rnd.between(0, 150)
            parts.push(
              `${label(a)}→${label(b)} ${Math.round(table.drop[b.peer]! * 100)}%/${table.delay[b.peer]}ms`,
            )
          }
          return ctx.cluster.setFaults(a, table).catch(() => {})
        }),
      )
      return { detail: `loss/delay ${parts.join(', ')}`, heal: () => ctx.cluster.healNetwork() }
    },
  },
  churn: {
    name: 'churn',
    description:
      'add a new node under load, then (when the fault ends) remove an old one for good: kill -9, then DELETE /v1/members/{peer} through a live node (out of _system and the catalog; its replicas are replaced at once); a node is removed only if every group keeps a live majority',
    async inject(ctx) {
      if (ctx.cluster.up().length >= ctx.nodesMax) return undefined
      const added = await ctx.cluster.add()
      return {
        detail: `added ${label(added)}`,
        heal: async () => {
          const victim = await removable(ctx, added)
          if (!victim) return
          await ctx.cluster.kill(victim, true)
          // The removal goes through the _system leader; retry while it moves or is unknown.
          const deadline = Date.now() + 15_000
          while (Date.now() < deadline) {
            const via = ctx.cluster.up()[0]
            if (!via) return
            const r = await sendJson(
              `${via.url}/v1/members/${encodeURIComponent(victim.peer)}`,
              'DELETE',
              {},
            ).catch(() => undefined)
            if (r?.status === 200 || r?.status === 404) return
            await new Promise((resolve) => setTimeout(resolve, 250))
          }
        },
      }
    },
  },
}

/**
 * An old node whose permanent loss keeps a live majority in `_system` and in every namespace
 * (by the catalog's voters), or undefined. Never leaves fewer than three nodes up.
 */
async function removable(ctx: NemesisContext, spare: ChaosNode): Promise<ChaosNode | undefined> {
  const up = ctx.cluster.up()
  if (up.length <= 3) return undefined
  const any = up.find((n) => n !== spare) ?? spare
  const status = (await getJson(`${any.url}/v1/status`).catch(() => undefined)) as
    | { system: { voters: string[] } }
    | undefined
  const list = (await getJson(`${any.url}/v1/namespaces`).catch(() => undefined)) as
    | { namespaces: Array<{ voters: string[] }> }
    | undefined
  if (!status || !list) return undefined
  const live = new Set(up.map((n) => n.peer))
  const groups = [status.system.voters, ...list.namespaces.map((ns) => ns.voters)]
  const keepsMajority = (victim: ChaosNode) =>
    groups.every(
      (voters) => voters.filter((v) => live.has(v) && v !== victim.peer).length > voters.length / 2,
    )
  return ctx.rnd.shuffle(up.filter((n) => n !== spare)).find(keepsMajority)
}

/** A scenario: which faults it draws from and how long calm and fault periods last. */
export interface Scenario {
  name: string
  description: string
  faults: Fault[]
  /** Calm before each fault, in milliseconds (drawn uniformly). */
  calmMs: [number, number]
  /** Duration of each fault, in milliseconds (drawn uniformly). */
  holdMs: [number, number]
}

const single = (name: string, holdMs: [number, number] = [3_000, 7_000]): Scenario => ({
  name,
  description: faults[name]!.description,
  faults: [faults[name]!],
  calmMs: [2_000, 4_000],
  holdMs,
})

/** Every scenario `--scenario` accepts. */
export const scenarios: Record<string, Scenario> = {
  halves: single('halves'),
  'isolate-leader': single('isolate-leader'),
  'majority-ring': single('majority-ring'),
  'kill-random': single('kill-random'),
  'kill-leader': single('kill-leader'),
  'pause-leader': single('pause-leader'),
  flaky: single('flaky', [4_000, 8_000]),
  churn: single('churn', [6_000, 10_000]),
  mix: {
    name: 'mix',
    description: 'a random fault of every kind above, one at a time',
    faults: Object.values(faults),
    calmMs: [2_000, 4_000],
    holdMs: [3_000, 7_000],
  },
}

/**
 * Runs `scenario` until `untilMs` (run time): calm, inject, hold, heal, and again. Resolves with
 * the fault windows once the last fault is healed.
 */
export async function runNemesis(
  ctx: NemesisContext,
  scenario: Scenario,
  untilMs: number,
  onWindow: (w: FaultWindow) => void = () => {},
): Promise<FaultWindow[]> {
  const windows: FaultWindow[] = []
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)))
  while (ctx.now() < untilMs) {
    await sleep(Math.min(ctx.rnd.between(...scenario.calmMs), untilMs - ctx.now()))
    if (ctx.now() >= untilMs) break
    const fault = ctx.rnd.pick(scenario.faults)
    const start = ctx.now()
    const injected = await fault.inject(ctx)
    if (!injected) continue
    await sleep(Math.min(ctx.rnd.between(...scenario.holdMs), untilMs - ctx.now()))
    await injected.heal()
    const w = { fault: fault.name, detail: injected.detail, start, end: ctx.now() }
    windows.push(w)
    onWindow(w)
  }
  return windows
}
