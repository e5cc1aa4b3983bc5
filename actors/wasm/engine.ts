/**
 * Typed access to the engine's WebAssembly API. The project compiles against `lib: ES2023` with
 * Node types only, which declare no `WebAssembly` global; these local types (not a global
 * augmentation, so no other folder is affected) describe the subset the runtime uses.
 */

/** A compiled module. */
export interface WasmModule {
  readonly __wasmModule?: never
}

/** A linear memory export. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}

/** A global export; i64 globals read and write as bigint. */
export interface WasmGlobal {
  value: number | bigint
}

/** An instance. */
export interface WasmInstance {
  readonly exports: Record<string, unknown>
}

/** Host imports: module name to import name to value. */
export type WasmImports = Record<string, Record<string, unknown>>

interface WasmApi {
  validate(bytes: Uint8Array): boolean
  compile(bytes: Uint8Array): Promise<WasmModule>
  Module: new (bytes: Uint8Array) => WasmModule
  Instance: new (module: WasmModule, imports: WasmImports) => WasmInstance
  RuntimeError: new (message?: string) => Error
  LinkError: new (message?: string) => Error
  CompileError: new (message?: string) => Error
}

/** The engine's `WebAssembly` object. */
export const wasm: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly
