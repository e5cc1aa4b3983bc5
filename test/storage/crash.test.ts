import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openNamespaceStore, openRaftLogStore } from '../../storage/index.js'
import { apply } from './fixtures/crash-apply.js'
import { seeded, tempDir } from './helpers.js'

const root = join(import.meta.dirname, '..', '..')
const child = join(import.meta.dirname, 'fixtures', 'crash-child.ts')
const RUNS = Number(process.env.STORAGE_CRASH_RUNS ?? 12)
const dec = new TextDecoder()

/**
 * Starts the writer, waits for `acks` acknowledgments plus a random few milliseconds, then kills
 * it with SIGKILL. Resolves with the highest acknowledged index.
 */
function runAndKill(dir: string, seed: number, acks: number, jitterMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const proc: ChildProcess = spawn(
      join(root, 'node_modules', '.bin', 'node'),
      ['--import', 'tsx', child, dir, String(seed)],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let stderr = ''
    let highest = 0
    let seen = 0
    let killing = false
    proc.stderr!.on('data', (d) => {
      stderr += String(d)
    })
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`child did not reach ${acks} acks in time; stderr: ${stderr}`))
    }, 30_000)
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (!line.startsWith('ack ')) return
      highest = Math.max(highest, Number(line.slice(4)))
      if (++seen >= acks && !killing) {
        killing = true
        setTimeout(() => proc.kill('SIGKILL'), jitterMs)
      }
    })
    proc.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal === 'SIGKILL' && killing) resolve(highest)
      else reject(new Error(`child exited with ${code ?? signal}; stderr: ${stderr}`))
    })
  })
}

/**
 * Reopens both databases, checks that they agree, replays what the namespace lost as a restart
 * does, and checks every ack.
 */
async function verify(dir: string, acked: number, label: string): Promise<{ last: number; applied: number }> {
  const log = await openRaftLogStore({ path: join(dir, 'raft.db') })
  const ns = await openNamespaceStore({ dataDir: dir, name: 'crash' })
  try {
    const view = log.open('g')
    const hs = view.initialState().hardState
    const last = view.lastIndex()
    expect(last, `${label}: acknowledged entry missing from the log`).toBeGreaterThanOrEqual(acked)
    expect(hs.commit, label).toBeGreaterThanOrEqual(acked)
    expect(hs.commit, label).toBeLessThanOrEqual(last)
    const entries = view.entries(view.firstIndex(), last + 1, Number.POSITIVE_INFINITY)
    entries.forEach((e) => {
      expect(Number(dec.decode(e.data)), label).toBe(e.index)
    })
    expect(view.snapshot().meta.index, label).toBeLessThanOrEqual(last)
    // Applies commit in batches: the namespace may be behind the log, never ahead of it, and the
    // log must still hold every entry after what it kept (compaction waits for a sync).
    const kept = ns.applied().index
    expect(kept, label).toBeLessThanOrEqual(hs.commit)
    expect(view.firstIndex(), `${label}: the log forgot entries the namespace lost`).toBeLessThanOrEqual(
      kept + 1,
    )
    // Replay as a restart does; then every acknowledged entry is applied, each once.
    for (let i = kept + 1; i <= hs.commit; i++)
      await apply(ns, view.entries(i, i + 1, Number.POSITIVE_INFINITY)[0]!)
    const applied = ns.applied().index
    expect(applied, `${label}: acknowledged entry not applied`).toBeGreaterThanOrEqual(acked)
    expect(applied, label).toBe(hs.commit)
    const state = await ns.loadActor('a')
    const keys = state.filter(([k]) => k.startsWith('k'))
    expect(keys.length, `${label}: applied exactly once`).toBe(applied)
    keys.forEach(([k, v], i) => {
      expect(Number(k.slice(1)), label).toBe(i + 1)
      expect(Number(dec.decode(v)), label).toBe(i + 1)
    })
    const count = state.find(([k]) => k === 'count')
    expect(count ? Number(dec.decode(count[1])) : 0, label).toBe(applied)
    const bytes = state.reduce((n, [k, v]) => n + Buffer.byteLength(k) + v.byteLength, 0)
    expect(await ns.actorBytes('a'), `${label}: byte accounting`).toBe(bytes)
    return { last, applied }
  } finally {
    await ns.close()
    await log.close()
  }
}

describe('crash safety', () => {
  let dir = ''
  let remove: () => Promise<void> = async () => {}
  beforeAll(async () => {
    ;({ dir, remove } = await tempDir('am-crash-'))
  })
  afterAll(() => remove())

  it('keeps hard state, log and applied state consistent and every acknowledged entry after SIGKILL', async () => {
    const seed = Number(process.env.STORAGE_SEED ?? Date.now() % 1_000_000)
    const rand = seeded(seed)
    let acked = 0
    let kills = 0
    for (let run = 0; run < RUNS; run++) {
      const label = `seed ${seed} run ${run}`
      const highest = await runAndKill(dir, seed + run, 1 + rand(60), rand(4))
      kills++
      expect(highest, label).toBeGreaterThan(acked)
      acked = highest
      const { last, applied } = await verify(dir, acked, label)
      expect(last, label).toBeGreaterThanOrEqual(applied)
    }
    expect(kills).toBe(RUNS)
  }, 120_000)
})
