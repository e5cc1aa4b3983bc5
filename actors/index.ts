/**
 * The public face of `actors/`: the WebAssembly actor runtime (deploy, call, commit/discard,
 * eviction, alarms, replay), its limits and errors, module signing, and the build command.
 */

export { decodeAlarm } from './call-context.js'
export {
  type ActorLimits,
  abiImports,
  alarmKey,
  type Capability,
  defaultLimits,
} from './config.js'
export * from './errors.js'
export type { ActorLogger, Clock } from './executor.js'
export type { CallOutcome, CallRecord, ReplayResult } from './replay.js'
export {
  type ActorRuntime,
  type ActorRuntimeComponents,
  type CallOptions,
  type CallResult,
  createActorRuntime,
  type DeployedModule,
  type DeployOptions,
  type DueAlarm,
} from './runtime.js'
export { type PublicKeyInput, signModule, toPublicKey } from './signing.js'
export { moduleHash } from './wasm/instrument.js'
