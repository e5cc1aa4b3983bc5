import { describe, expect, it } from 'vitest'
import { abiImports, alwaysGranted } from '../../actors/config.js'
import { MemoryLimitError, ModuleInvalidError } from '../../actors/errors.js'
import { encodeS64, encodeU32, Reader } from '../../actors/wasm/binary.js'
import { type WasmGlobal, wasm } from '../../actors/wasm/engine.js'
import { instrumentModule } from '../../actors/wasm/instrument.js'
import { parseSections, readMemories, SectionId } from '../../actors/wasm/module.js'
import { abiModule, buildModule, i32, i64, sleb } from './wasm-builder.js'

const options = {
  granted: new Set<string>(abiImports),
  alwaysGranted,
  known: new Set<string>(abiImports),
  memoryPagesMax: 16,
  startFuel: 1_000_000,
}

/** A module whose `handle` loops `n` times (n = payload length), plus a wide straight-line body. */
function loopModule(padding = 0): Uint8Array {
  const pad = Array.from({ length: padding }, () => [0x41, 0x01, 0x1a]).flat() // i32.const 1; drop
  return abiModule({
    handleLocals: [[1, i32]],
    handleBody: [
      ...pad,
      // local i = payloadLen; loop { if i == 0 break; i--; br loop }
      0x20,
      0x03,
      0x21,
      0x04,
      0x02,
      0x40,
      0x03,
      0x40,
      0x20,
      0x04,
      0x45,
      0x0d,
      0x01,
      0x20,
      0x04,
      0x41,
      0x01,
      0x6b,
      0x21,
      0x04,
      0x0c,
      0x00,
      0x0b,
      0x0b,
    ],
  })
}

function instantiate(bytes: Uint8Array) {
  const info = instrumentModule(bytes, options)
  const instance = new wasm.Instance(new wasm.Module(info.bytes), { actormesh: {} })
  const fuel = instance.exports.__am_fuel as WasmGlobal
  const handle = instance.exports.handle as (a: number, b: number, c: number, d: number) => number
  const run = (n: number) => {
    fuel.value = 1_000_000n
    handle(0, 0, 0, n)
    return 1_000_000 - Number(fuel.value)
  }
  return { info, run, fuel, handle }
}

describe('LEB128', () => {
  it('round-trips unsigned and signed values at the byte boundaries', () => {
    for (const v of [0, 1, 63, 64, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32 - 1]) {
      expect(new Reader(new Uint8Array(encodeU32(v))).u32()).toBe(v)
    }
    for (const v of [0n, -1n, 63n, 64n, -64n, -65n, 2n ** 40n, -(2n ** 63n), 2n ** 63n - 1n]) {
      expect(new Reader(new Uint8Array(encodeS64(v))).s64()).toBe(v)
    }
  })

  it('refuses a u32 longer than five bytes', () => {
    expect(() => new Reader(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])).u32()).toThrow(
      ModuleInvalidError,
    )
  })
})

describe('instrumentModule', () => {
  it('produces a module that validates, with the fuel and reset exports added', () => {
    const info = instrumentModule(loopModule(), options)
    expect(wasm.validate(info.bytes)).toBe(true)
    expect(info.loops).toBe(1)
    expect(info.hash).toMatch(/^[0-9a-f]{64}$/)
  })

  it('charges the same fuel for the same call, and more per loop iteration', () => {
    const { run } = instantiate(loopModule())
    const once = run(10)
    expect(run(10)).toBe(once)
    const perIteration = run(11) - once
    expect(perIteration).toBeGreaterThan(0)
    expect(run(110) - once).toBe(perIteration * 100)
  })

  it('re-encodes function and code section sizes when a body grows past a LEB128 byte boundary', () => {
    // 60 pads * 3 bytes: the body crosses 127 and the rewritten one crosses another boundary.
    const { run, info } = instantiate(loopModule(60))
    expect(wasm.validate(info.bytes)).toBe(true)
    expect(run(3)).toBeGreaterThan(120) // 60 pads are 120 instructions
  })

  it('traps once fuel runs out, leaving the fuel global negative', () => {
    const { fuel, handle } = instantiate(loopModule())
    fuel.value = 50n
    expect(() => handle(0, 0, 0, 1_000)).toThrow(wasm.RuntimeError)
    expect(fuel.value as bigint).toBeLessThan(0n)
  })

  it('sets the memory maximum to memoryPagesMax when the module declares none', () => {
    const info = instrumentModule(abiModule({ memory: { min: 1 } }), options)
    const memory = readMemories(parseSections(info.bytes).find((s) => s.id === SectionId.memory))[0]!
    expect(memory.max).toBe(16)
  })

  it('refuses a memory maximum or minimum over memoryPagesMax', () => {
    expect(() => instrumentModule(abiModule({ memory: { min: 1, max: 17 } }), options)).toThrow(
      MemoryLimitError,
    )
    expect(() => instrumentModule(abiModule({ memory: { min: 17 } }), options)).toThrow(MemoryLimitError)
  })

  it('refuses bytes that are not WebAssembly', () => {
    expect(() => instrumentModule(new TextEncoder().encode('hello, world'), options)).toThrow(
      ModuleInvalidError,
    )
    const truncated = loopModule().slice(0, 30)
    expect(() => instrumentModule(truncated, options)).toThrow(ModuleInvalidError)
  })

  it('refuses a module without each required export', () => {
    for (const name of ['memory', 'alloc', 'handle', 'abi_version']) {
      expect(() => instrumentModule(abiModule({ omitExport: name }), options)).toThrow(
        `export '${name}' is missing`,
      )
    }
  })

  it('refuses an ABI version other than 1', () => {
    expect(() => instrumentModule(abiModule({ abiVersion: 2 }), options)).toThrow(/abi_version/)
  })

  it('refuses instructions it cannot meter (SIMD)', () => {
    const simd = abiModule({ handleBody: [0xfd, 0x0c, ...new Array(16).fill(0), 0x1a] })
    expect(() => instrumentModule(simd, options)).toThrow(ModuleInvalidError)
  })

  it('routes memory.grow through a guard that flags a failed grow', () => {
    // handle: drop(memory.grow(payloadLen))
    const info = instrumentModule(
      abiModule({ memory: { min: 1, max: 2 }, handleBody: [0x20, 0x03, 0x40, 0x00, 0x1a] }),
      options,
    )
    const instance = new wasm.Instance(new wasm.Module(info.bytes), { actormesh: {} })
    const handle = instance.exports.handle as (a: number, b: number, c: number, d: number) => number
    const oom = instance.exports.__am_oom as WasmGlobal
    handle(0, 0, 0, 1)
    expect(oom.value).toBe(0)
    handle(0, 0, 0, 1)
    expect(oom.value).toBe(1)
  })

  it('keeps i64 constants exact in rewritten bodies', () => {
    const bytes = buildModule({
      types: [
        [[i32], [i32]],
        [[i32, i32, i32, i32], [i32]],
        [[], [i64]],
      ],
      funcs: [
        { type: 0, body: [0x41, 0x00, 0x0b] },
        { type: 1, body: [0x41, 0x00, 0x0b] },
        { type: 2, body: [0x42, ...encodeS64(-(2n ** 62n) - 3n), 0x0b] },
      ],
      memory: { min: 1, max: 1 },
      globals: [{ type: i32, mutable: false, init: [0x41, ...sleb(1)] }],
      exports: [
        { name: 'memory', kind: 'memory', index: 0 },
        { name: 'alloc', kind: 'func', index: 0 },
        { name: 'handle', kind: 'func', index: 1 },
        { name: 'abi_version', kind: 'global', index: 0 },
        { name: 'big', kind: 'func', index: 2 },
      ],
    })
    const info = instrumentModule(bytes, options)
    const instance = new wasm.Instance(new wasm.Module(info.bytes), { actormesh: {} })
    expect((instance.exports.big as () => bigint)()).toBe(-(2n ** 62n) - 3n)
  })
})
