/**
 * A small WebAssembly module model: the section list, plus decoded views of the sections the
 * runtime inspects or rewrites (imports, memory, globals, exports, code). Sections it does not
 * change stay as the original bytes, so re-encoding is exact for them.
 */
import { ModuleInvalidError } from '../errors.js'
import { Reader, Writer } from './binary.js'

/** Section ids of the core binary format. */
export const SectionId = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const

/** Canonical order of non-custom sections (tag sits between memory and global). */
const sectionOrder = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]

/** External kinds of imports and exports. */
export const ExternKind = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const

/** One raw section. */
export interface Section {
  id: number
  body: Uint8Array
}

/** One import entry; `typeIndex` for functions, `globalType` for globals. */
export interface Import {
  module: string
  name: string
  kind: number
}

/** One export entry. */
export interface Export {
  name: string
  kind: number
  index: number
}

/** Memory limits; `max` undefined when the module declares none. */
export interface MemoryLimits {
  min: number
  max: number | undefined
  shared: boolean
  memory64: boolean
}

/** A global: its value type byte, mutability and raw init expression (ending in `end`). */
export interface GlobalDef {
  valType: number
  mutable: boolean
  init: Uint8Array
}

const magicAndVersion = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

/** Splits a binary into sections; checks the header, section order and sizes. */
export function parseSections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || magicAndVersion.some((b, i) => bytes[i] !== b)) {
    throw new ModuleInvalidError('not a WebAssembly version 1 binary (bad magic or version)')
  }
  const r = new Reader(bytes, 8)
  const sections: Section[] = []
  let lastRank = -1
  while (!r.done) {
    const id = r.byte()
    const body = r.take(r.u32())
    if (id !== SectionId.custom) {
      const rank = sectionOrder.indexOf(id)
      if (rank < 0) r.fail(`unknown section id ${id}`)
      if (rank <= lastRank) r.fail(`section ${id} out of order or repeated`)
      lastRank = rank
    }
    sections.push({ id, body })
  }
  return sections
}

/** Encodes sections back into a binary. */
export function encodeSections(sections: Section[]): Uint8Array {
  const w = new Writer().bytes(magicAndVersion)
  for (const s of sections) w.byte(s.id).sized(s.body)
  return w.finish()
}

/** Inserts or replaces the section `id`, keeping canonical order. */
export function putSection(sections: Section[], id: number, body: Uint8Array): void {
  const existing = sections.findIndex((s) => s.id === id)
  if (existing >= 0) {
    sections[existing] = { id, body }
    return
  }
  const rank = sectionOrder.indexOf(id)
  let at = sections.length
  for (let i = 0; i < sections.length; i++) {
    const s = sections[i]!
    if (s.id !== SectionId.custom && sectionOrder.indexOf(s.id) > rank) {
      at = i
      break
    }
  }
  sections.splice(at, 0, { id, body })
}

export function findSection(sections: Section[], id: number): Section | undefined {
  return sections.find((s) => s.id === id)
}

function readLimits(r: Reader): MemoryLimits {
  const flags = r.byte()
  if (flags > 7) r.fail(`unknown limits flags ${flags}`)
  const min = r.u32()
  const max = flags & 1 ? r.u32() : undefined
  return { min, max, shared: (flags & 2) !== 0, memory64: (flags & 4) !== 0 }
}

function skipValType(r: Reader): number {
  const t = r.byte()
  if (t === 0x63 || t === 0x64) r.skipSigned(5) // typed references carry a heap type
  return t
}

/** Decodes the import section. */
export function readImports(section: Section | undefined): Import[] {
  if (!section) return []
  const r = new Reader(section.body)
  const out: Import[] = []
  for (let n = r.u32(); n > 0; n--) {
    const module = r.name()
    const name = r.name()
    const kind = r.byte()
    if (kind === ExternKind.func) r.u32()
    else if (kind === ExternKind.table) {
      skipValType(r)
      readLimits(r)
    } else if (kind === ExternKind.memory) readLimits(r)
    else if (kind === ExternKind.global) {
      skipValType(r)
      r.byte()
    } else if (kind === ExternKind.tag) {
      r.byte()
      r.u32()
    } else r.fail(`unknown import kind ${kind}`)
    out.push({ module, name, kind })
  }
  return out
}

/** Decodes the export section. */
export function readExports(section: Section | undefined): Export[] {
  if (!section) return []
  const r = new Reader(section.body)
  const out: Export[] = []
  for (let n = r.u32(); n > 0; n--) out.push({ name: r.name(), kind: r.byte(), index: r.u32() })
  return out
}

export function encodeExports(exports: Export[]): Uint8Array {
  const w = new Writer().u32(exports.length)
  for (const e of exports) w.name(e.name).byte(e.kind).u32(e.index)
  return w.finish()
}

/** Decodes the memory section (ABI v1 allows at most one memory). */
export function readMemories(section: Section | undefined): MemoryLimits[] {
  if (!section) return []
  const r = new Reader(section.body)
  const out: MemoryLimits[] = []
  for (let n = r.u32(); n > 0; n--) out.push(readLimits(r))
  return out
}

export function encodeMemories(memories: MemoryLimits[]): Uint8Array {
  const w = new Writer().u32(memories.length)
  for (const m of memories) {
    const flags = (m.max !== undefined ? 1 : 0) | (m.shared ? 2 : 0) | (m.memory64 ? 4 : 0)
    w.byte(flags).u32(m.min)
    if (m.max !== undefined) w.u32(m.max)
  }
  return w.finish()
}

/** Reads a constant expression up to and including its `end`, returning its raw bytes. */
function readConstExpr(r: Reader): Uint8Array {
  const start = r.offset
  for (;;) {
    const op = r.byte()
    if (op === 0x0b) break
    if (op === 0x41 || op === 0x23 || op === 0xd2) r.skipSigned(5)
    else if (op === 0x42) r.skipSigned(10)
    else if (op === 0x43) r.take(4)
    else if (op === 0x44) r.take(8)
    else if (op === 0xd0) r.skipSigned(5)
    else if (op === 0x6a || op === 0x6b || op === 0x6c || op === 0x7c || op === 0x7d || op === 0x7e) {
      // extended constant expressions: add/sub/mul, no immediates
    } else r.fail(`unsupported constant expression opcode 0x${op.toString(16)}`)
  }
  return r.bytes.subarray(start, r.offset)
}

/** Decodes the global section. */
export function readGlobals(section: Section | undefined): GlobalDef[] {
  if (!section) return []
  const r = new Reader(section.body)
  const out: GlobalDef[] = []
  for (let n = r.u32(); n > 0; n--) {
    const valType = skipValType(r)
    const mut = r.byte()
    if (mut > 1) r.fail(`bad global mutability ${mut}`)
    out.push({ valType, mutable: mut === 1, init: readConstExpr(r) })
  }
  return out
}

export function encodeGlobals(globals: GlobalDef[]): Uint8Array {
  const w = new Writer().u32(globals.length)
  for (const g of globals)
    w.byte(g.valType)
      .byte(g.mutable ? 1 : 0)
      .bytes(g.init)
  return w.finish()
}

/** Number of entries of a vector section (type, function), without decoding the entries. */
export function vectorCount(section: Section | undefined): number {
  if (!section) return 0
  return new Reader(section.body).u32()
}

/** Appends raw entries to a vector section's body, bumping its count. */
export function appendToVector(section: Section | undefined, entries: Uint8Array[]): Uint8Array {
  const r = section ? new Reader(section.body) : undefined
  const count = r ? r.u32() : 0
  const rest = r ? section!.body.subarray(r.offset) : new Uint8Array(0)
  const w = new Writer().u32(count + entries.length).bytes(rest)
  for (const e of entries) w.bytes(e)
  return w.finish()
}

/** The value of an `i32.const N; end` init expression, or undefined for anything else. */
export function constI32(init: Uint8Array): number | undefined {
  if (init[0] !== 0x41 || init[init.length - 1] !== 0x0b) return undefined
  const r = new Reader(init, 1, init.length - 1)
  const v = r.s32()
  return r.done ? v : undefined
}
