/**
 * The instruction walker and the fuel rewriter for function bodies.
 *
 * Fuel model (deterministic by construction): every function body and every loop body is a
 * *region*. A region's cost is the number of instructions written in it, not counting nested
 * loop bodies (those are regions of their own). The rewriter charges a region's whole cost once,
 * at function entry or at the loop header (which runs on every iteration), so the fuel a call
 * uses depends only on which functions it enters and how many loop iterations it runs — never
 * on time, engine or JIT. It is an upper bound of the instructions executed, which is what a
 * limit needs: every unbounded execution (a loop or a recursion) pays on every round.
 */
import { Reader, Writer } from './binary.js'

/** Indices the rewriter needs: the fuel global and the function replacing `memory.grow`. */
export interface RewriteTargets {
  fuelGlobal: number
  growFunction: number
}

/** Result of walking one body: the rewritten body and what it contained. */
export interface RewrittenBody {
  body: Uint8Array
  loops: number
}

type Piece = Uint8Array | { cost: number }

enum Op {
  unreachable = 0x00,
  block = 0x02,
  loop = 0x03,
  if = 0x04,
  else = 0x05,
  end = 0x0b,
  memoryGrow = 0x40,
}

/** Skips a block type: empty (0x40), a value type, or a type index (s33). */
function skipBlockType(r: Reader): void {
  const b = r.bytes[r.offset]
  if (b === undefined) r.fail('unexpected end of code')
  if (b === 0x40 || b === 0x7f || b === 0x7e || b === 0x7d || b === 0x7c || b === 0x70 || b === 0x6f) {
    r.offset++
  } else if (b === 0x63 || b === 0x64) {
    r.offset++
    r.skipSigned(5)
  } else r.skipSigned(5)
}

function skipMemArg(r: Reader): void {
  const align = r.u32()
  if (align & 0x40) r.u32() // multi-memory: a memory index follows
  r.u32()
}

/** Immediates of the 0xFC prefix (saturating conversions, bulk memory, tables). */
function skipPrefixedFc(r: Reader): void {
  const sub = r.u32()
  if (sub <= 7) return
  if (sub === 8 || sub === 10 || sub === 12 || sub === 14) {
    r.u32()
    r.u32()
  } else if (sub === 9 || sub === 11 || sub === 13 || sub === 15 || sub === 16 || sub === 17) {
    r.u32()
  } else r.fail(`unsupported instruction 0xfc ${sub}`)
}

/**
 * Skips the immediates of opcode `op` (already read). Refuses what ABI v1 does not meter or
 * support: exceptions, tail calls, SIMD, atomics and unknown opcodes.
 */
function skipImmediates(r: Reader, op: number): void {
  if (op === Op.block || op === Op.loop || op === Op.if) skipBlockType(r)
  else if (op === 0x0c || op === 0x0d || (op >= 0x20 && op <= 0x26) || op === 0x10 || op === 0xd2) r.u32()
  else if (op === 0x0e) {
    for (let n = r.u32(); n > 0; n--) r.u32()
    r.u32()
  } else if (op === 0x11) {
    r.u32()
    r.u32()
  } else if (op === 0x1c) {
    for (let n = r.u32(); n > 0; n--) r.byte()
  } else if (op >= 0x28 && op <= 0x3e) skipMemArg(r)
  else if (op === 0x3f || op === 0x40) r.u32()
  else if (op === 0x41) r.skipSigned(5)
  else if (op === 0x42) r.skipSigned(10)
  else if (op === 0x43) r.take(4)
  else if (op === 0x44) r.take(8)
  else if (op === 0xd0) skipBlockType(r)
  else if (op === 0xfc) skipPrefixedFc(r)
  else if (
    op === 0x00 ||
    op === 0x01 ||
    op === 0x05 ||
    op === 0x0b ||
    op === 0x0f ||
    op === 0x1a ||
    op === 0x1b ||
    (op >= 0x45 && op <= 0xc4) ||
    op === 0xd1
  ) {
    // no immediates
  } else r.fail(`unsupported instruction 0x${op.toString(16)}`)
}

/** The bytes that charge `cost` fuel and trap when the fuel runs out. */
export function chargeCode(fuelGlobal: number, cost: number): Uint8Array {
  const w = new Writer()
  w.byte(0x23).u32(fuelGlobal) // global.get $fuel
  w.byte(0x42).s64(BigInt(cost)) // i64.const cost
  w.byte(0x7d) // i64.sub
  w.byte(0x24).u32(fuelGlobal) // global.set $fuel
  w.byte(0x23).u32(fuelGlobal) // global.get $fuel
  w.byte(0x42).byte(0x00) // i64.const 0
  w.byte(0x53) // i64.lt_s
  w.byte(0x04).byte(0x40) // if
  w.byte(0x00) // unreachable: the host maps it to FuelExhaustedError by reading the global
  w.byte(0x0b) // end
  return w.finish()
}

/** Rewrites one function body (the bytes after its size) with fuel charges. */
export function rewriteBody(body: Uint8Array, targets: RewriteTargets): RewrittenBody {
  const r = new Reader(body)
  for (let groups = r.u32(); groups > 0; groups--) {
    r.u32()
    r.byte()
  }
  const pieces: Piece[] = [body.subarray(0, r.offset)]
  const regions: Array<{ cost: number }> = [{ cost: 0 }]
  pieces.push(regions[0]!)
  const blocks: number[] = [Op.block] // the function body is the outermost block
  let runStart = r.offset
  let loops = 0
  while (blocks.length > 0) {
    const at = r.offset
    const op = r.byte()
    skipImmediates(r, op)
    regions[regions.length - 1]!.cost++
    if (op === Op.block || op === Op.if) blocks.push(op)
    else if (op === Op.loop) {
      blocks.push(op)
      pieces.push(body.subarray(runStart, r.offset))
      const region = { cost: 0 }
      regions.push(region)
      pieces.push(region)
      runStart = r.offset
      loops++
    } else if (op === Op.end) {
      if (blocks.pop() === Op.loop) regions.pop()
    } else if (op === Op.memoryGrow) {
      pieces.push(body.subarray(runStart, at))
      pieces.push(new Writer().byte(0x10).u32(targets.growFunction).finish())
      runStart = r.offset
    }
  }
  if (!r.done) r.fail('code after the end of a function body')
  pieces.push(body.subarray(runStart, r.offset))
  const w = new Writer()
  for (const p of pieces) w.bytes(p instanceof Uint8Array ? p : chargeCode(targets.fuelGlobal, p.cost))
  return { body: w.finish(), loops }
}
