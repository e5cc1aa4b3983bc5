/**
 * The etcd comparison (`npm run bench -- etcd`): the cluster group's write workload against a
 * 3-member etcd from Debian's `etcd-server` package (bench/etcd.ts). Figures: `etcd.write_ops_per_s`,
 * `etcd.write_p99_ms`, `etcd.write_p50_ms_1client` and `cluster.write_ratio_vs_etcd`. In a full
 * `npm run bench` the cluster group measured etcd at its end and reported these already; alone, our
 * writes/s for the ratio come from bench/results.json (the note says so). Nothing is reported when
 * etcd is not installed.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ETCD_MISSING, etcdFigures, etcdInstalled, etcdReported, etcdThisRun } from '../etcd.js'
import type { BenchGroup } from '../types.js'
import { describe, load, writeWorkload } from './cluster.js'

const resultsPath = join(import.meta.dirname, '..', 'results.json')

/** `cluster.write_ops_per_s` and when it was written, from bench/results.json; undefined if absent. */
function recordedClusterWrites(): { opsPerS: number; source: string } | undefined {
  if (!existsSync(resultsPath)) return undefined
  const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as Record<string, unknown>
  const ops = results['cluster.write_ops_per_s']
  if (typeof ops !== 'number') return undefined
  return { opsPerS: ops, source: `bench/results.json of ${String(results._updated ?? 'an earlier run')}` }
}

const run: BenchGroup = async ({ quick, log: say }) => {
  if (!etcdInstalled()) {
    say(ETCD_MISSING)
    return []
  }
  if (etcdReported()) {
    say('measured at the end of the cluster group in this run; figures reported there')
    return []
  }
  // A failed comparison (also one the cluster group saw fail earlier in this run) is logged, not
  // thrown: run.ts writes bench/results.json only after the last group, so throwing would lose
  // every other group's figures.
  const m = await etcdThisRun(writeWorkload(quick), { load, describe }, say).catch((e: unknown) => {
    say(`etcd comparison failed: ${(e as Error).message}`)
    return undefined
  })
  if (!m) return []
  const ours = recordedClusterWrites()
  const figures = etcdFigures(m, ours ?? { opsPerS: Number.NaN, source: '' })
  if (ours) return figures
  say('no cluster.write_ops_per_s in bench/results.json: cluster.write_ratio_vs_etcd not reported')
  return figures.filter((f) => f.key !== 'cluster.write_ratio_vs_etcd')
}

export default run
