/**
 * The chaos checkers: a linearizability search (Wing–Gong–Lowe with memoization, per-key) with the
 * register model, and the list-append and counter checks. Input is a recorded history.
 */
export { type CounterKeyResult, type CounterViolation, checkCounter } from './counter.js'
export {
  byKey,
  type EventType,
  formatEvent,
  type HistoryEvent,
  type Operation,
  type OpStatus,
  operations,
  parseHistory,
} from './history.js'
export { checkListAppend, type ListKeyResult, type ListViolation } from './list-append.js'
export {
  type CasInput,
  type CasOutput,
  checkRegister,
  type KeyResult,
  type RegisterValue,
  registerModel,
} from './register.js'
export {
  cutAt,
  linearizable,
  type Model,
  minimalViolation,
  SEARCH_STEPS_MAX,
  type SearchOptions,
  type Verdict,
  type Violation,
  weaken,
} from './wgl.js'
