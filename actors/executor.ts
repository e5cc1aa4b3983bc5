/**
 * Runs calls on one compiled module. A namespace keeps ONE instance: wasm calls are synchronous
 * and never yield, so calls of different actors cannot overlap inside it. Before every call the
 * instance is reset to its post-start snapshot (memory image and mutable globals), so a call is a
 * pure function of (state, method, payload, timestamp, seed): fuel is deterministic, replay is
 * exact, and no data leaks from one actor to the next. An instance that trapped, or whose memory
 * grew, is thrown away and re-created on the next call.
 */
import { type CallContext, keyBytes } from './call-context.js'
import type { ActorLimits } from './config.js'
import {
  ActorFailedError,
  ActorsError,
  ActorTrapError,
  CallDeadlineError,
  FuelExhaustedError,
  MemoryLimitError,
  MethodNotFoundError,
  ModuleInvalidError,
  SizeLimitError,
  StackOverflowError,
} from './errors.js'
import { type WasmGlobal, type WasmInstance, type WasmMemory, type WasmModule, wasm } from './wasm/engine.js'
import { fuelExport, type InstrumentedModule, oomExport } from './wasm/instrument.js'

/** Wall clock for deadlines (monotonic milliseconds). */
export interface Clock {
  nowMs(): number
}

/** The logger subset the runtime uses (pino-compatible). */
export interface ActorLogger {
  debug(obj: object, msg: string): void
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

/** What one successful execution returns. */
export interface Execution {
  reply: Uint8Array
  fuelUsed: number
}

interface Live {
  instance: WasmInstance
  memory: WasmMemory
  fuel: WasmGlobal
  oom: WasmGlobal
  alloc: (len: number) => number
  handle: (mp: number, ml: number, pp: number, pl: number) => number
  image: Uint8Array
  globals: Array<[WasmGlobal, number | bigint]>
  dirty: boolean
}

const textDecoder = new TextDecoder()
const textEncoder = new TextEncoder()
const logLevels = ['debug', 'info', 'warn', 'error'] as const
const memory = (live: Live) => live.memory

/** Executes calls against one instrumented, compiled module. */
export class ModuleExecutor {
  private live: Live | undefined
  private ctx: CallContext | undefined
  private deadlineAt = 0
  private logContext: { actor: string } = { actor: '' }
  private readonly: Set<string> | undefined
  /** Instances created so far (cold starts of the module, for tests and metrics). */
  instantiations = 0

  constructor(
    readonly info: InstrumentedModule,
    private readonly compiled: WasmModule,
    readonly limits: ActorLimits,
    private readonly clock: Clock,
    private readonly logger: ActorLogger,
  ) {}

  /** Creates the instance now (deploy does this so link errors and start traps surface there). */
  warm(): void {
    if (!this.live) this.live = this.instantiate()
  }

  /** Bytes of wasm memory this executor holds (for metrics). */
  get memoryBytes(): number {
    return this.live ? this.live.memory.buffer.byteLength + this.live.image.length : 0
  }

  private instantiate(): Live {
    let instance: WasmInstance
    try {
      instance = new wasm.Instance(this.compiled, { actormesh: this.hostImports() })
    } catch (err) {
      if (err instanceof wasm.LinkError) throw new ModuleInvalidError(`cannot link: ${err.message}`)
      throw this.classify(err, undefined)
    }
    this.instantiations++
    const ex = instance.exports
    const memory = ex.memory as WasmMemory
    const globals = this.info.mutableGlobalExports.map((name): [WasmGlobal, number | bigint] => {
      const g = ex[name] as WasmGlobal
      return [g, g.value as number | bigint]
    })
    const live: Live = {
      instance,
      memory,
      fuel: ex[fuelExport] as WasmGlobal,
      oom: ex[oomExport] as WasmGlobal,
      alloc: ex.alloc as Live['alloc'],
      handle: ex.handle as Live['handle'],
      image: new Uint8Array(memory.buffer).slice(),
      globals,
      dirty: false,
    }
    if (!this.readonly) this.readonly = this.readReadonly(live)
    return live
  }

  /** Calls the optional `readonly_methods` export once (after the snapshot: the next call resets). */
  private readReadonly(live: Live): Set<string> {
    const fn = live.instance.exports.readonly_methods
    if (typeof fn !== 'function') return new Set()
    live.dirty = true
    live.fuel.value = BigInt(this.limits.callFuelMax)
    this.live = live
    try {
      const ptr = (fn as () => number)()
      const len = new DataView(memory(live).buffer).getUint32(ptr, true)
      if (ptr + 4 + len > memory(live).buffer.byteLength || len > this.limits.payloadBytesMax) {
        throw new ModuleInvalidError('export readonly_methods returned an out-of-bounds list')
      }
      const text = textDecoder.decode(new Uint8Array(memory(live).buffer, ptr + 4, len))
      return new Set(text.split('\n').filter((m) => m.length > 0))
    } catch (err) {
      throw err instanceof ModuleInvalidError
        ? err
        : new ModuleInvalidError(`export readonly_methods failed: ${String(err)}`)
    } finally {
      this.live = undefined
    }
  }

  /** True when the module declares `method` read-only (it may then run on any replica). */
  isReadonly(method: string): boolean {
    this.warm()
    return this.readonly!.has(method)
  }

  private reset(live: Live): void {
    new Uint8Array(live.memory.buffer).set(live.image)
    for (const [g, v] of live.globals) g.value = v
    live.oom.value = 0
  }

  /** Runs `handle(method, payload)` under `ctx`. Throws a typed error; `ctx` holds the effects. */
  run(ctx: CallContext, actor: string, method: string, payload: Uint8Array): Execution {
    let live = this.live
    if (!live) live = this.live = this.instantiate()
    else if (live.dirty) this.reset(live)
    live.dirty = true
    ctx.readonly = this.readonly!.has(method)
    this.ctx = ctx
    this.logContext = { actor }
    this.deadlineAt = this.clock.nowMs() + this.limits.callDeadlineMs
    live.fuel.value = BigInt(this.limits.callFuelMax)
    try {
      const methodLength = keyBytes(method)
      const ptr = live.alloc(methodLength + payload.length)
      textEncoder.encodeInto(method, this.bytes(ptr, methodLength))
      this.bytes(ptr + methodLength, payload.length).set(payload)
      const result = live.handle(ptr, methodLength, ptr + methodLength, payload.length)
      const fuelUsed = this.limits.callFuelMax - Number(live.fuel.value as bigint)
      this.checkDeadline()
      const reply = this.readReply(result)
      if (live.memory.buffer.byteLength !== live.image.length) this.live = undefined
      return { reply, fuelUsed }
    } catch (err) {
      this.live = undefined
      throw this.classify(err, live)
    } finally {
      this.ctx = undefined
    }
  }

  private readReply(ptr: number): Uint8Array {
    this.bytes(ptr, 4)
    const len = new DataView(this.live!.memory.buffer).getUint32(ptr, true)
    if (len > this.limits.replyBytesMax) {
      throw new SizeLimitError(
        `Cannot return a reply of ${len} bytes: over replyBytesMax '${this.limits.replyBytesMax}'`,
        'replyBytesMax',
      )
    }
    return this.bytes(ptr + 4, len).slice()
  }

  private classify(err: unknown, live: Live | undefined): unknown {
    if (err instanceof ActorsError) return err
    if (err instanceof RangeError && /call stack/i.test(err.message)) {
      return new StackOverflowError(`Call overflowed the stack: ${err.message}`)
    }
    if (err instanceof wasm.RuntimeError) {
      if (live && (live.fuel.value as bigint) < 0n) {
        return new FuelExhaustedError(`Call used more than callFuelMax '${this.limits.callFuelMax}' fuel`)
      }
      if (live && live.oom.value === 1) {
        return new MemoryLimitError(
          `Call could not grow memory past memoryPagesMax '${this.limits.memoryPagesMax}'`,
        )
      }
      return new ActorTrapError(`Call trapped: ${err.message}`)
    }
    return err
  }

  private checkDeadline(): void {
    if (this.clock.nowMs() > this.deadlineAt) {
      throw new CallDeadlineError(`Call ran past callDeadlineMs '${this.limits.callDeadlineMs}'`)
    }
  }

  /** A view of instance memory, bounds-checked (a bad pointer from the module is a trap). */
  private bytes(ptr: number, len: number): Uint8Array {
    const buffer = this.live!.memory.buffer
    if (ptr < 0 || len < 0 || ptr + len > buffer.byteLength) {
      throw new ActorTrapError(`Call passed an out-of-bounds pointer ${ptr}+${len}`)
    }
    return new Uint8Array(buffer, ptr, len)
  }

  private context(): CallContext {
    const ctx = this.ctx
    // Host imports run only inside `run`, except from a start function, which gets no state.
    if (!ctx) throw new ActorTrapError('Host import called outside a call (from a start function)')
    this.checkDeadline()
    return ctx
  }

  private hostImports(): Record<string, (...args: number[]) => number | undefined> {
    return {
      state_get: (kp, kl, dp, dc) => {
        const ctx = this.context()
        const value = ctx.get(ctx.decodeKey(this.bytes(kp!, kl!)))
        if (value === undefined) return -1
        if (value.length <= dc!) this.bytes(dp!, value.length).set(value)
        return value.length
      },
      state_set: (kp, kl, vp, vl) => {
        const ctx = this.context()
        ctx.put(ctx.decodeKey(this.bytes(kp!, kl!)), this.bytes(vp!, vl!).slice())
        return undefined
      },
      state_delete: (kp, kl) => {
        const ctx = this.context()
        ctx.put(ctx.decodeKey(this.bytes(kp!, kl!)), null)
        return undefined
      },
      state_list: (pp, pl, dp, dc) => this.stateList(pp!, pl!, dp!, dc!),
      broadcast: (p, l) => {
        this.context().broadcast(this.bytes(p!, l!))
        return undefined
      },
      log: (level, p, l) => {
        this.context()
        const text = textDecoder.decode(this.bytes(p!, Math.min(l!, this.limits.logBytesMax)))
        this.logger[logLevels[level!] ?? 'info'](this.logContext, text)
        return undefined
      },
      now: () => this.context().now,
      random: (p, l) => {
        this.context().fillRandom(this.bytes(p!, l!))
        return undefined
      },
      alarm_set: (at) => {
        this.context().setAlarm(at!)
        return undefined
      },
      alarm_cancel: () => {
        this.context().cancelAlarm()
        return undefined
      },
      panic: (kind, p, l) => {
        const text = textDecoder.decode(this.bytes(p!, Math.min(l!, this.limits.logBytesMax)))
        if (kind === 1) throw new MethodNotFoundError(`Actor has no method '${text}'`)
        if (kind === 2) throw new ActorFailedError(`Actor failed the call: ${text}`)
        throw new ActorTrapError(`Actor aborted: ${text}`)
      },
    }
  }

  /** Encodes `[u32 keyLen][key][u32 valueLen][value]...` for the prefix, if it fits `dc` bytes. */
  private stateList(pp: number, pl: number, dp: number, dc: number): number {
    const ctx = this.context()
    const entries = ctx.list(ctx.decodeKey(this.bytes(pp, pl), 'prefix'))
    const encoder = new TextEncoder()
    const keys = entries.map(([k]) => encoder.encode(k))
    let total = 0
    entries.forEach(([, v], i) => {
      total += 8 + keys[i]!.length + v.length
    })
    if (total > dc) return total
    const out = this.bytes(dp, total)
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
    let at = 0
    entries.forEach(([, v], i) => {
      const k = keys[i]!
      view.setUint32(at, k.length, true)
      out.set(k, at + 4)
      at += 4 + k.length
      view.setUint32(at, v.length, true)
      out.set(v, at + 4)
      at += 4 + v.length
    })
    return total
  }
}
