/**
 * The seeded deterministic cluster simulator: a faulty network, crashing nodes and an invariant
 * checker around `RawNode`. Tests and `npm run sim` use it; nothing in production does.
 */
export {
  type AppliedRecord,
  entryKey,
  type Invariant,
  InvariantChecker,
  InvariantViolation,
} from './invariants.js'
export { type MessageFaults, Network, type NetworkStats, NO_FAULTS } from './network.js'
export type { BrokenMode } from './node.js'
export { deriveSeed, fnv1a, Prng } from './prng.js'
export {
  LIVENESS_ELECTION_TIMEOUTS,
  replay,
  replayCommand,
  runSimulation,
  SimulationFailure,
  type SimulationOptions,
  type SimulationResult,
} from './run.js'
