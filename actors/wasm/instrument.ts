/**
 * Deploy-time validation and instrumentation of an actor module (ABI v1): checks the header,
 * imports against the namespace's capabilities, the memory ceiling and the required exports,
 * then adds the fuel global, the memory-grow guard and the exports the host needs to reset an
 * instance between calls.
 */
import { createHash } from 'node:crypto'
import { CapabilityDeniedError, MemoryLimitError, ModuleInvalidError } from '../errors.js'
import { Reader, Writer } from './binary.js'
import { rewriteBody } from './code.js'
import { wasm } from './engine.js'
import {
  appendToVector,
  constI32,
  ExternKind,
  encodeExports,
  encodeGlobals,
  encodeMemories,
  encodeSections,
  findSection,
  type GlobalDef,
  parseSections,
  putSection,
  readExports,
  readGlobals,
  readImports,
  readMemories,
  SectionId,
  vectorCount,
} from './module.js'

/** The module every ABI v1 import comes from. */
export const abiModule = 'actormesh'
/** Exports the host adds; a module may not use this prefix itself. */
export const reservedExportPrefix = '__am_'
export const fuelExport = '__am_fuel'
export const oomExport = '__am_oom'

/** What deploy checks a module against. */
export interface InstrumentOptions {
  /** Import names (in module `actormesh`) the namespace grants. */
  granted: ReadonlySet<string>
  /** Imports every module may use whatever the grants (the SDK's panic path). */
  alwaysGranted: ReadonlySet<string>
  /** Every import name ABI v1 defines. */
  known: ReadonlySet<string>
  memoryPagesMax: number
  /** The fuel the start function may use (the global's initial value). */
  startFuel: number
}

/** A validated, instrumented module. */
export interface InstrumentedModule {
  /** SHA-256 of the original module bytes, hex. */
  hash: string
  /** The instrumented binary (what gets compiled). */
  bytes: Uint8Array
  /** Imports the module uses (names in module `actormesh`). */
  imports: string[]
  memoryPagesMin: number
  memoryPagesMax: number
  /** Export names of the module's mutable globals, restored before every call. */
  mutableGlobalExports: string[]
  /** Loops in the module's code (fuel charge points besides function entries). */
  loops: number
}

/** SHA-256 of module bytes, hex: the module's identity in caches, records and signatures. */
export function moduleHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function checkImports(sections: ReturnType<typeof parseSections>, options: InstrumentOptions) {
  const imports = readImports(findSection(sections, SectionId.import))
  let funcs = 0
  const globals = 0
  for (const im of imports) {
    const full = `${im.module}.${im.name}`
    if (im.kind !== ExternKind.func) {
      throw new ModuleInvalidError(`import '${full}' is not a function (ABI v1 imports functions only)`)
    }
    if (im.module !== abiModule || !options.known.has(im.name)) {
      throw new CapabilityDeniedError(`import '${full}' is not part of ABI v1`, full)
    }
    if (!options.granted.has(im.name) && !options.alwaysGranted.has(im.name)) {
      throw new CapabilityDeniedError(`import '${full}' is not granted to this namespace`, full)
    }
    funcs++
  }
  return { names: imports.map((im) => im.name), funcs, globals }
}

function checkMemory(sections: ReturnType<typeof parseSections>, options: InstrumentOptions) {
  const memories = readMemories(findSection(sections, SectionId.memory))
  const memory = memories[0]
  if (memories.length !== 1 || !memory) throw new ModuleInvalidError('module must define exactly one memory')
  if (memory.shared || memory.memory64) throw new ModuleInvalidError('shared and 64-bit memories are refused')
  const limit = options.memoryPagesMax
  if (memory.min > limit) {
    throw new MemoryLimitError(`memory minimum '${memory.min}' pages is over memoryPagesMax '${limit}'`)
  }
  if (memory.max !== undefined && memory.max > limit) {
    throw new MemoryLimitError(`memory maximum '${memory.max}' pages is over memoryPagesMax '${limit}'`)
  }
  // A module without a maximum (AssemblyScript's default) gets the namespace's ceiling.
  const max = memory.max ?? limit
  putSection(sections, SectionId.memory, encodeMemories([{ ...memory, max }]))
  return { min: memory.min, max }
}

function checkExports(
  exports: ReturnType<typeof readExports>,
  globals: GlobalDef[],
  importedGlobals: number,
) {
  const byName = new Map(exports.map((e) => [e.name, e]))
  const required: Array<[string, number]> = [
    ['memory', ExternKind.memory],
    ['alloc', ExternKind.func],
    ['handle', ExternKind.func],
    ['abi_version', ExternKind.global],
  ]
  for (const [name, kind] of required) {
    if (byName.get(name)?.kind !== kind) throw new ModuleInvalidError(`export '${name}' is missing`)
  }
  const version = globals[byName.get('abi_version')!.index - importedGlobals]
  const value = version && !version.mutable ? constI32(version.init) : undefined
  if (value !== 1)
    throw new ModuleInvalidError(`export 'abi_version' must be an immutable i32 global equal to 1`)
  for (const e of exports) {
    if (e.name.startsWith(reservedExportPrefix)) {
      throw new ModuleInvalidError(`export '${e.name}' uses the reserved prefix '${reservedExportPrefix}'`)
    }
  }
}

function growHelperBody(oomGlobal: number): Uint8Array {
  const code = new Writer()
    .bytes([0x00]) // no locals
    .bytes([0x20, 0x00, 0x40, 0x00, 0x22, 0x00]) // local.get 0; memory.grow 0; local.tee 0
    .bytes([0x41, 0x7f, 0x46, 0x04, 0x40, 0x41, 0x01, 0x24]) // i32.const -1; i32.eq; if; i32.const 1; global.set
    .u32(oomGlobal)
    .bytes([0x0b, 0x20, 0x00, 0x0b]) // end; local.get 0; end
    .finish()
  return new Writer().sized(code).finish()
}

function rewriteCode(
  sections: ReturnType<typeof parseSections>,
  declared: number,
  fuelGlobal: number,
  growFunction: number,
) {
  const code = findSection(sections, SectionId.code)
  const r = new Reader(code?.body ?? new Uint8Array([0]))
  const count = r.u32()
  if (count !== declared) throw new ModuleInvalidError('function and code section counts differ')
  const w = new Writer().u32(count + 1)
  let loops = 0
  for (let i = 0; i < count; i++) {
    const size = r.u32()
    const out = rewriteBody(r.take(size), { fuelGlobal, growFunction })
    loops += out.loops
    w.sized(out.body)
  }
  return { writer: w, loops }
}

/** Validates `bytes` against ABI v1 and the options, and returns the instrumented module. */
export function instrumentModule(bytes: Uint8Array, options: InstrumentOptions): InstrumentedModule {
  const hash = moduleHash(bytes)
  const sections = parseSections(bytes)
  if (!wasm.validate(bytes)) throw new ModuleInvalidError('module does not validate')
  const imports = checkImports(sections, options)
  const memory = checkMemory(sections, options)
  const globals = readGlobals(findSection(sections, SectionId.global))
  const exports = readExports(findSection(sections, SectionId.export))
  checkExports(exports, globals, imports.globals)

  const fuelGlobal = imports.globals + globals.length
  const oomGlobal = fuelGlobal + 1
  const startFuel = new Writer().byte(0x42).s64(BigInt(options.startFuel)).byte(0x0b).finish()
  const added: GlobalDef[] = [
    { valType: 0x7e, mutable: true, init: startFuel },
    { valType: 0x7f, mutable: true, init: new Uint8Array([0x41, 0x00, 0x0b]) },
  ]
  putSection(sections, SectionId.global, encodeGlobals([...globals, ...added]))

  const typeSection = findSection(sections, SectionId.type)
  const growType = vectorCount(typeSection)
  putSection(
    sections,
    SectionId.type,
    appendToVector(typeSection, [new Uint8Array([0x60, 1, 0x7f, 1, 0x7f])]),
  )
  const functionSection = findSection(sections, SectionId.function)
  const declared = vectorCount(functionSection)
  const growFunction = imports.funcs + declared
  putSection(
    sections,
    SectionId.function,
    appendToVector(functionSection, [new Writer().u32(growType).finish()]),
  )

  const { writer, loops } = rewriteCode(sections, declared, fuelGlobal, growFunction)
  putSection(sections, SectionId.code, writer.bytes(growHelperBody(oomGlobal)).finish())

  const exported = new Set(exports.filter((e) => e.kind === ExternKind.global).map((e) => e.index))
  const mutableGlobalExports: string[] = []
  const extra = [
    { name: fuelExport, kind: ExternKind.global, index: fuelGlobal },
    { name: oomExport, kind: ExternKind.global, index: oomGlobal },
  ]
  globals.forEach((g, i) => {
    const index = imports.globals + i
    if (!g.mutable) return
    if (g.valType !== 0x7f && g.valType !== 0x7e && g.valType !== 0x7d && g.valType !== 0x7c) {
      throw new ModuleInvalidError(`mutable global ${index} has a type the host cannot reset`)
    }
    const name = exported.has(index)
      ? exports.find((e) => e.kind === ExternKind.global && e.index === index)!.name
      : ''
    const exportName = name || `${reservedExportPrefix}g${index}`
    if (!name) extra.push({ name: exportName, kind: ExternKind.global, index })
    mutableGlobalExports.push(exportName)
  })
  putSection(sections, SectionId.export, encodeExports([...exports, ...extra]))
  return {
    hash,
    bytes: encodeSections(sections),
    imports: imports.names,
    memoryPagesMin: memory.min,
    memoryPagesMax: memory.max,
    mutableGlobalExports,
    loops,
  }
}
