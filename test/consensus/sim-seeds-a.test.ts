import { describe } from 'vitest'
import { sweepSeeds } from './sim-seeds.js'

// Seeds 0..1049 here and 1050..2099 in sim-seeds-b.test.ts: two files so both cores share the sweep.
describe('simulator seed sweep, first half', () => {
  sweepSeeds(0, 1050, 500)
})
