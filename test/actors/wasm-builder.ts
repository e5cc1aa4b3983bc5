/**
 * A tiny WebAssembly module builder for tests (no WAT, no third-party tools): enough to write
 * hand-made actor modules byte by byte.
 */
import { encodeU32 } from '../../actors/wasm/binary.js'

export const i32 = 0x7f
export const i64 = 0x7e

export interface FuncSpec {
  type: number
  locals?: Array<[count: number, valType: number]>
  /** Instructions, including the final `end` (0x0b). */
  body: number[]
}

export interface ModuleSpec {
  types: Array<[params: number[], results: number[]]>
  imports?: Array<{ module: string; name: string; type: number }>
  funcs: FuncSpec[]
  memory?: { min: number; max?: number }
  globals?: Array<{ type: number; mutable: boolean; init: number[] }>
  exports: Array<{ name: string; kind: 'func' | 'memory' | 'global'; index: number }>
}

const text = new TextEncoder()
const vec = (items: number[][]): number[] => [...encodeU32(items.length), ...items.flat()]
const name = (s: string): number[] => {
  const b = [...text.encode(s)]
  return [...encodeU32(b.length), ...b]
}
const section = (id: number, body: number[]): number[] => [id, ...encodeU32(body.length), ...body]

/** Encodes a module from its spec. */
export function buildModule(spec: ModuleSpec): Uint8Array {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
  out.push(
    ...section(
      1,
      vec(spec.types.map(([p, r]) => [0x60, ...vec(p.map((x) => [x])), ...vec(r.map((x) => [x]))])),
    ),
  )
  if (spec.imports?.length) {
    out.push(
      ...section(
        2,
        vec(spec.imports.map((im) => [...name(im.module), ...name(im.name), 0x00, ...encodeU32(im.type)])),
      ),
    )
  }
  out.push(...section(3, vec(spec.funcs.map((f) => encodeU32(f.type)))))
  if (spec.memory) {
    const m = spec.memory
    const limits =
      m.max === undefined ? [0x00, ...encodeU32(m.min)] : [0x01, ...encodeU32(m.min), ...encodeU32(m.max)]
    out.push(...section(5, vec([limits])))
  }
  if (spec.globals?.length) {
    out.push(...section(6, vec(spec.globals.map((g) => [g.type, g.mutable ? 1 : 0, ...g.init, 0x0b]))))
  }
  const kinds = { func: 0, memory: 2, global: 3 }
  out.push(
    ...section(7, vec(spec.exports.map((e) => [...name(e.name), kinds[e.kind], ...encodeU32(e.index)]))),
  )
  const bodies = spec.funcs.map((f) => {
    const body = [...vec((f.locals ?? []).map(([n, t]) => [...encodeU32(n), t])), ...f.body]
    return [...encodeU32(body.length), ...body]
  })
  out.push(...section(10, vec(bodies)))
  return new Uint8Array(out)
}

/**
 * A minimal ABI v1 actor: `handle` runs `handleBody` (which must leave nothing on the stack)
 * then replies with the 4 bytes at offset 0 as a length-prefixed empty... reply of length 0
 * (memory at 0 is zero). Imports are function imports numbered before the module's functions,
 * so with `imports` the function indices shift by their count.
 */
export function abiModule(
  options: {
    handleBody?: number[]
    handleLocals?: Array<[number, number]>
    imports?: Array<{ name: string; type: number }>
    extraTypes?: Array<[number[], number[]]>
    extraFuncs?: FuncSpec[]
    memory?: { min: number; max?: number }
    abiVersion?: number
    omitExport?: string
  } = {},
): Uint8Array {
  const imports = (options.imports ?? []).map((im) => ({ module: 'actormesh', name: im.name, type: im.type }))
  const base = imports.length
  const exports: ModuleSpec['exports'] = [
    { name: 'memory', kind: 'memory', index: 0 },
    { name: 'alloc', kind: 'func', index: base },
    { name: 'handle', kind: 'func', index: base + 1 },
    { name: 'abi_version', kind: 'global', index: 0 },
  ]
  return buildModule({
    types: [[[i32], [i32]], [[i32, i32, i32, i32], [i32]], ...(options.extraTypes ?? [])],
    imports,
    funcs: [
      { type: 0, body: [0x41, ...sleb(1024), 0x0b] }, // alloc: i32.const 1024
      { type: 1, locals: options.handleLocals, body: [...(options.handleBody ?? []), 0x41, 0x00, 0x0b] },
      ...(options.extraFuncs ?? []),
    ],
    memory: options.memory ?? { min: 1, max: 1 },
    globals: [{ type: i32, mutable: false, init: [0x41, ...sleb(options.abiVersion ?? 1)] }],
    exports: exports.filter((e) => e.name !== options.omitExport),
  })
}

/** Signed LEB128 of a small integer (for i32.const immediates). */
export function sleb(value: number): number[] {
  const out: number[] = []
  for (;;) {
    const b = value & 0x7f
    value >>= 7
    if ((value === 0 && (b & 0x40) === 0) || (value === -1 && (b & 0x40) !== 0)) {
      out.push(b)
      return out
    }
    out.push(b | 0x80)
  }
}
