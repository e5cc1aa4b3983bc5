/**
 * Shared set-up for the runtime tests: a runtime over a FakeState with a controllable clock, and
 * a helper that plays the Raft apply path (apply the write set to the store, then commit).
 */
import type { ActorLimits } from '../../actors/config.js'
import { type CallResult, createActorRuntime } from '../../actors/index.js'
import { FakeState } from './fake-state.js'

/** A clock the test moves by hand (`advance`) or that ticks on every read (`tickMs`). */
export class TestClock {
  t = 0
  tickMs = 0
  nowMs(): number {
    this.t += this.tickMs
    return this.t
  }
  advance(ms: number): void {
    this.t += ms
  }
}

export const text = new TextEncoder()
export const untext = (b: Uint8Array) => new TextDecoder().decode(b)

export function setup(limits: Partial<ActorLimits> = {}) {
  const store = new FakeState()
  const clock = new TestClock()
  const runtime = createActorRuntime({
    stateOf: () => store,
    limits,
    clock,
    wallClock: () => 1_700_000_000_000,
  })
  /** Applies a call's writes to the store and reports the commit, as the node does after Raft. */
  const commit = (ns: string, actor: string, result: CallResult) => {
    store.apply(result.writes)
    runtime.commit(ns, actor, result.callId)
    return result
  }
  /** Calls and commits; returns the reply as text. */
  const callText = async (ns: string, actor: string, method: string, payload = '', now = 1_000, seed = 7) =>
    untext(
      commit(ns, actor, await runtime.call(ns, actor, method, text.encode(payload), { now, seed })).reply,
    )
  return { store, clock, runtime, commit, callText }
}
