import { describe } from 'vitest'
import { sweepSeeds } from './sim-seeds.js'

describe('simulator seed sweep, second half', () => {
  sweepSeeds(1050, 1050, 500)
})
