/**
 * The actor runtime: deploys modules into namespaces and executes calls through each actor's
 * input gate. A call does not commit: it returns its write set and broadcasts, the writes become
 * pending (visible to later calls of the same actor), and the caller reports `commit` once the
 * Raft entry is applied to the store, or `discard` when leadership is lost.
 */
import { randomInt } from 'node:crypto'
import type { StateReader, StateWrite } from '../storage/index.js'
import { type ActorRecord, ActorTable } from './actor-table.js'
import { CallContext, decodeAlarm, keyBytes } from './call-context.js'
import {
  type ActorLimits,
  abiImports,
  alarmKey,
  alwaysGranted,
  type Capability,
  resolveLimits,
} from './config.js'
import {
  ActorBusyError,
  ActorsError,
  CapabilityDeniedError,
  ModuleInvalidError,
  NamespaceNotDeployedError,
  PendingDiscardedError,
  SizeLimitError,
} from './errors.js'
import { type ActorLogger, type Clock, ModuleExecutor } from './executor.js'
import {
  type CallOutcome,
  type CallRecord,
  diffOutcomes,
  RecordedState,
  type ReplayResult,
} from './replay.js'
import { type PublicKeyInput, toPublicKey, verifyModuleSignature } from './signing.js'
import { type WasmModule, wasm } from './wasm/engine.js'
import { type InstrumentedModule, instrumentModule, moduleHash } from './wasm/instrument.js'

/** What the runtime is built from (STYLE.md §2: dependencies passed in). */
export interface ActorRuntimeComponents {
  /** The state reader of a namespace (storage/ implements it on LibSQL; tests pass a fake). */
  stateOf: (namespace: string) => StateReader
  limits?: Partial<ActorLimits>
  /** Monotonic milliseconds for deadlines and idle eviction. Default: `performance.now()`. */
  clock?: Clock
  /** Wall time in ms for calls without a timestamp. Default: `Date.now()`. */
  wallClock?: () => number
  logger?: ActorLogger
}

/** Deploy options of a namespace. */
export interface DeployOptions {
  /** Imports the namespace grants; default: all of ABI v1. */
  capabilities?: Iterable<Capability>
  /** When non-empty, the module must carry a `signature` by one of these Ed25519 keys. */
  publicKeys?: readonly PublicKeyInput[]
  signature?: Uint8Array
  signal?: AbortSignal
}

/** What deploy accepted. */
export interface DeployedModule {
  namespace: string
  hash: string
  imports: string[]
  memoryPagesMax: number
}

/** Inputs of one call besides method and payload; give both `now` and `seed` for exact replay. */
export interface CallOptions {
  /** The call's timestamp (ms), what `now` returns; default: wall time. */
  now?: number
  /** Seed of the call's random source (uint32); default: a random one (recorded). */
  seed?: number
  signal?: AbortSignal
}

/** A call's result. Release `reply` and `broadcasts` only after the writes commit (output gate). */
export interface CallResult {
  /** Per-actor sequence number of this call; pass it to `commit`. */
  callId: number
  reply: Uint8Array
  /** The write set; `value: null` deletes. Alarm changes appear under the reserved alarm key. */
  writes: StateWrite[]
  broadcasts: Uint8Array[]
  fuelUsed: number
}

/** A resident actor whose alarm is due. */
export interface DueAlarm {
  actor: string
  atMs: number
}

interface Namespace {
  name: string
  executor: ModuleExecutor
  granted: Set<string>
  state: StateReader
}

const noopLogger: ActorLogger = { debug() {}, info() {}, warn() {}, error() {} }

function checkName(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new TypeError(`Bad ${what} '${String(value)}': expected a string of 1 to 256 characters`)
  }
}

/** The actor runtime of one node. Create with `createActorRuntime`. */
export class ActorRuntime {
  readonly limits: ActorLimits
  private readonly clock: Clock
  private readonly wallClock: () => number
  private readonly logger: ActorLogger
  private readonly namespaces = new Map<string, Namespace>()
  private readonly compiled = new Map<string, { info: InstrumentedModule; module: WasmModule }>()
  private readonly table: ActorTable
  /** Aborted by `close`: every call and deploy in flight or later sees it. */
  private readonly shutdown = new AbortController()

  constructor(private readonly components: ActorRuntimeComponents) {
    this.limits = resolveLimits(components.limits)
    this.clock = components.clock ?? { nowMs: () => performance.now() }
    this.wallClock = components.wallClock ?? Date.now
    this.logger = components.logger ?? noopLogger
    this.table = new ActorTable(this.limits)
  }

  /** Validates, instruments, compiles (once per hash) and installs a namespace's module. */
  async deploy(
    namespace: string,
    moduleBytes: Uint8Array,
    options: DeployOptions = {},
  ): Promise<DeployedModule> {
    options.signal?.throwIfAborted()
    checkName('namespace', namespace)
    if (!(moduleBytes instanceof Uint8Array)) throw new TypeError('Bad module: expected a Uint8Array')
    const keys = (options.publicKeys ?? []).map(toPublicKey)
    if (keys.length > 0) verifyModuleSignature(namespace, moduleBytes, options.signature, keys)
    const granted = new Set<string>(options.capabilities ?? abiImports)
    for (const c of granted) {
      if (!(abiImports as readonly string[]).includes(c)) throw new TypeError(`Bad capability '${c}'`)
    }
    try {
      const { info, module } = await this.compile(moduleBytes, granted)
      options.signal?.throwIfAborted()
      const executor = new ModuleExecutor(info, module, this.limits, this.clock, this.logger)
      executor.warm()
      this.namespaces.set(namespace, {
        name: namespace,
        executor,
        granted,
        state: this.components.stateOf(namespace),
      })
      return { namespace, hash: info.hash, imports: info.imports, memoryPagesMax: info.memoryPagesMax }
    } catch (err) {
      if (err instanceof ActorsError)
        err.message = `Cannot deploy module to namespace '${namespace}': ${err.message}`
      throw err
    }
  }

  private async compile(bytes: Uint8Array, granted: Set<string>) {
    const hash = moduleHash(bytes)
    let entry = this.compiled.get(hash)
    if (entry) {
      for (const name of entry.info.imports) {
        if (!granted.has(name) && !alwaysGranted.has(name)) {
          const full = `actormesh.${name}`
          throw new CapabilityDeniedError(`import '${full}' is not granted to this namespace`, full)
        }
      }
      this.compiled.delete(hash) // re-insert: most recently used
    } else {
      const info = instrumentModule(bytes, {
        granted,
        alwaysGranted,
        known: new Set(abiImports),
        memoryPagesMax: this.limits.memoryPagesMax,
        startFuel: this.limits.callFuelMax,
      })
      let module: WasmModule
      try {
        module = await wasm.compile(info.bytes)
      } catch (err) {
        throw new ModuleInvalidError(`instrumented module does not compile: ${(err as Error).message}`)
      }
      entry = { info, module }
    }
    this.compiled.set(hash, entry)
    for (const key of this.compiled.keys()) {
      if (this.compiled.size <= this.limits.compiledModulesMax) break
      this.compiled.delete(key)
    }
    return entry
  }

  /** True when the namespace's module declares `method` read-only (safe to serve from a replica). */
  isReadonly(namespace: string, method: string): boolean {
    const ns = this.namespaces.get(namespace)
    if (!ns)
      throw new NamespaceNotDeployedError(
        `Cannot look up method '${method}': namespace '${namespace}' has no module`,
      )
    return ns.executor.isReadonly(method)
  }

  /** The hash of the module a namespace runs, or undefined when none is deployed. */
  moduleOf(namespace: string): string | undefined {
    return this.namespaces.get(namespace)?.executor.info.hash
  }

  /**
   * Runs one call through the actor's input gate. Its writes are pending until `commit`.
   * Throws a typed `ActorsError`; a failed call leaves no writes.
   */
  async call(
    namespace: string,
    actor: string,
    method: string,
    payload: Uint8Array,
    options: CallOptions = {},
  ): Promise<CallResult> {
    options.signal?.throwIfAborted()
    this.shutdown.signal.throwIfAborted()
    checkName('actor id', actor)
    if (typeof method !== 'string' || method.length === 0)
      throw new TypeError(`Bad method '${String(method)}'`)
    if (!(payload instanceof Uint8Array)) throw new TypeError('Bad payload: expected a Uint8Array')
    if (options.now !== undefined && !Number.isFinite(options.now))
      throw new RangeError(`Bad now '${options.now}'`)
    if (
      options.seed !== undefined &&
      !(Number.isInteger(options.seed) && options.seed >= 0 && options.seed < 2 ** 32)
    ) {
      throw new RangeError(`Bad seed '${options.seed}': expected an integer in [0, 2^32)`)
    }
    const size = keyBytes(method) + payload.length
    if (size > this.limits.payloadBytesMax) {
      throw new SizeLimitError(
        `Cannot call '${method}' on actor '${actor}': ${size} bytes, over payloadBytesMax '${this.limits.payloadBytesMax}'`,
        'payloadBytesMax',
      )
    }
    const ns = this.namespaces.get(namespace)
    if (!ns)
      throw new NamespaceNotDeployedError(
        `Cannot call actor '${actor}': namespace '${namespace}' has no module`,
      )
    const rec = this.table.touch(namespace, actor, this.clock.nowMs())
    if (rec.queued >= this.limits.queuedCallsMax) {
      throw new ActorBusyError(
        `Cannot call actor '${actor}': ${rec.queued} calls queued, queuedCallsMax reached`,
      )
    }
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.shutdown.signal])
      : this.shutdown.signal
    rec.queued++
    const run = rec.gate.then(() => this.execute(ns, rec, method, payload, { ...options, signal }))
    rec.gate = run.then(
      () => undefined,
      () => undefined,
    )
    try {
      return await run
    } finally {
      rec.queued--
      this.table.evict(this.clock.nowMs())
    }
  }

  private async activate(ns: Namespace, rec: ActorRecord, signal: AbortSignal | undefined): Promise<void> {
    const entries = await ns.state.loadActor(rec.actor, { signal })
    if (rec.discarded || rec.state) return
    rec.load(entries)
    this.table.loaded(rec)
  }

  private async execute(
    ns: Namespace,
    rec: ActorRecord,
    method: string,
    payload: Uint8Array,
    options: CallOptions,
  ): Promise<CallResult> {
    options.signal?.throwIfAborted()
    const gone = () =>
      new PendingDiscardedError(`Call to actor '${rec.actor}' dropped: pending writes were discarded`)
    if (rec.discarded) throw gone()
    if (!rec.state) await this.activate(ns, rec, options.signal)
    if (rec.discarded) throw gone()
    if (rec.pending.length >= this.limits.pendingCallsMax) {
      throw new ActorBusyError(
        `Cannot call actor '${rec.actor}': pendingCallsMax '${this.limits.pendingCallsMax}' reached`,
      )
    }
    const now = options.now ?? this.wallClock()
    const seed = options.seed ?? randomInt(0, 2 ** 32)
    const ctx = new CallContext(rec, this.limits, now, seed)
    // A fired alarm is cleared before the handler runs, so it fires once unless the actor re-sets it.
    if (method === 'alarm' && ctx.get(alarmKey)) ctx.cancelAlarm()
    const record: CallRecord = {
      namespace: ns.name,
      actor: rec.actor,
      method,
      payload: payload.slice(),
      now,
      seed,
      moduleHash: ns.executor.info.hash,
      stateBytes: rec.bytes,
      reads: ctx.reads,
      outcome: { ok: false, code: '', message: '' },
    }
    const before = rec.residentBytes
    try {
      const { reply, fuelUsed } = ns.executor.run(ctx, rec.actor, method, payload)
      const writes = ctx.writes()
      record.outcome = { ok: true, reply, writes, broadcasts: ctx.broadcasts, fuelUsed }
      rec.apply(writes)
      const callId = ++rec.lastCallId
      rec.pending.push(callId)
      const stateWrites = writes.map(([key, value]) => ({ actor: rec.actor, key, value }))
      return { callId, reply, writes: stateWrites, broadcasts: ctx.broadcasts, fuelUsed }
    } catch (err) {
      const e = err as Error & { code?: string }
      record.outcome = { ok: false, code: e.code ?? e.name, message: e.message }
      throw err
    } finally {
      rec.record(record, this.limits.replayRingSize)
      this.table.account(rec, before)
    }
  }

  /**
   * Reports that the write sets of this actor's calls up to `callId` are applied to the store
   * (Raft applies in order, so committing a call commits every earlier one).
   */
  commit(namespace: string, actor: string, callId: number): void {
    const rec = this.table.find(namespace, actor)
    if (!rec) return
    while (rec.pending.length > 0 && rec.pending[0]! <= callId) rec.pending.shift()
  }

  /**
   * Drops an actor's pending writes (leadership lost): the resident instance state goes, and
   * every queued call fails with `PendingDiscardedError`. The next call reloads from the store.
   */
  discard(namespace: string, actor: string): void {
    const rec = this.table.find(namespace, actor)
    if (!rec) return
    rec.discarded = true
    this.table.remove(rec)
  }

  /** `discard` for every resident actor of a namespace (the node lost the group's leadership). */
  discardNamespace(namespace: string): void {
    for (const rec of [...this.table.ofNamespace(namespace)]) this.discard(namespace, rec.actor)
  }

  /** Forgets a namespace: its resident actors and its module go (the namespace was deleted). */
  removeNamespace(namespace: string): void {
    this.discardNamespace(namespace)
    this.namespaces.delete(namespace)
  }

  /**
   * Stops the runtime: queued calls fail, resident state is dropped (pending writes with it),
   * and later calls and deploys throw the abort reason.
   */
  close(): void {
    this.shutdown.abort(new PendingDiscardedError('Actor runtime closed'))
    for (const name of this.namespaces.keys()) this.discardNamespace(name)
    this.namespaces.clear()
  }

  /** Evicts idle actors now (the node calls this on a timer); returns how many went. */
  evictIdle(): number {
    return this.table.evict(this.clock.nowMs())
  }

  /** Resident actors of a namespace whose alarm time is at or before `nowMs`. */
  dueAlarms(namespace: string, nowMs: number): DueAlarm[] {
    const out: DueAlarm[] = []
    for (const rec of this.table.ofNamespace(namespace)) {
      const value = rec.state?.get(alarmKey)
      if (value && decodeAlarm(value) <= nowMs) out.push({ actor: rec.actor, atMs: decodeAlarm(value) })
    }
    return out
  }

  /** The recorded recent calls of a resident actor, oldest first (empty when not resident). */
  exportCalls(namespace: string, actor: string): CallRecord[] {
    return [...(this.table.find(namespace, actor)?.ring ?? [])]
  }

  /** Figures for metrics and tests. */
  stats(): { residentActors: number; residentBytes: number; evictions: number; compiledModules: number } {
    return {
      residentActors: this.table.size,
      residentBytes: this.table.residentBytes,
      evictions: this.table.evictions,
      compiledModules: this.compiled.size,
    }
  }

  /**
   * Re-executes a recorded call against the values it read. With `moduleBytes`, runs that module
   * instead (validated with the namespace's capabilities) and lists the differences.
   */
  async replay(record: CallRecord, options: { moduleBytes?: Uint8Array; signal?: AbortSignal } = {}) {
    options.signal?.throwIfAborted()
    const ns = this.namespaces.get(record.namespace)
    const granted = ns?.granted ?? new Set<string>(abiImports)
    let executor: ModuleExecutor
    if (!options.moduleBytes && ns?.executor.info.hash === record.moduleHash) executor = ns.executor
    else {
      const cached = options.moduleBytes ? undefined : this.compiled.get(record.moduleHash)
      if (!options.moduleBytes && !cached) {
        throw new ModuleInvalidError(
          `Cannot replay: module '${record.moduleHash}' is not cached; pass moduleBytes`,
        )
      }
      const { info, module } = cached ?? (await this.compile(options.moduleBytes!, granted))
      executor = new ModuleExecutor(info, module, this.limits, this.clock, this.logger)
    }
    return replayOn(executor, record)
  }
}

function replayOn(executor: ModuleExecutor, record: CallRecord): ReplayResult {
  const base = new RecordedState(record.reads, record.stateBytes)
  const ctx = new CallContext(base, executor.limits, record.now, record.seed)
  if (record.method === 'alarm' && ctx.get(alarmKey)) ctx.cancelAlarm()
  let outcome: CallOutcome
  try {
    const { reply, fuelUsed } = executor.run(ctx, record.actor, record.method, record.payload)
    outcome = { ok: true, reply, writes: ctx.writes(), broadcasts: ctx.broadcasts, fuelUsed }
  } catch (err) {
    const e = err as Error & { code?: string }
    outcome = { ok: false, code: e.code ?? e.name, message: e.message }
  }
  return {
    moduleHash: executor.info.hash,
    outcome,
    differences: diffOutcomes(record.outcome, outcome),
    unrecordedReads: [...base.unrecorded].filter((k) => k !== alarmKey),
  }
}

/** Creates an actor runtime. */
export function createActorRuntime(components: ActorRuntimeComponents): ActorRuntime {
  return new ActorRuntime(components)
}
