/**
 * Shared body of the seed-sweep tests: runs a range of seeds in batches, so that vitest can spread
 * the two sweep files over both cores, and fails with every failing seed and its replay command.
 */
import { expect, it } from 'vitest'
import { runSimulation, SimulationFailure } from '../../consensus/sim/index.js'

/** Seeds per `it`: small enough that a failure points near the seed, large enough to stay cheap. */
const BATCH_SEEDS = 150

export function sweepSeeds(from: number, count: number, steps: number): void {
  for (let lo = from; lo < from + count; lo += BATCH_SEEDS) {
    const hi = Math.min(lo + BATCH_SEEDS, from + count)
    it(`simulated cluster keeps every invariant and recovers after healing for seeds ${lo}..${hi - 1}`, () => {
      const failures: string[] = []
      let committed = 0
      for (let seed = lo; seed < hi; seed++) {
        try {
          committed += runSimulation({ seed, steps }).stats.commitIndex
        } catch (e) {
          failures.push(e instanceof SimulationFailure ? e.message : `seed ${seed}: ${String(e)}`)
        }
      }
      expect(failures, failures.join('\n')).toEqual([])
      // A sweep in which nothing commits would prove nothing.
      expect(committed).toBeGreaterThan(hi - lo)
    })
  }
}
