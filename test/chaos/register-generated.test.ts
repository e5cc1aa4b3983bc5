import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type CasInput,
  type CasOutput,
  checkRegister,
  cutAt,
  linearizable,
  minimalViolation,
  type Operation,
  operations,
  registerModel,
  weaken,
} from '../../chaos/check/index.js'
import { bruteForce, type GenOptions, normalize, registerHistory, toEvents } from './histories.js'

// One seed drives every property here; a failure prints it (and fast-check its own counterexample).
const SEED = Number(process.env.CHAOS_CHECK_SEED ?? 20_251_123)
console.log(`register checker properties: seed ${SEED} (CHAOS_CHECK_SEED=${SEED} to replay)`)

const genOptions = fc.record<GenOptions>({
  steps: fc.integer({ min: 1, max: 80 }),
  window: fc.integer({ min: 0, max: 60 }),
  infoPercent: fc.integer({ min: 0, max: 40 }),
  phantomPercent: fc.integer({ min: 0, max: 40 }),
  failPercent: fc.integer({ min: 0, max: 20 }),
})

/** A generated history as the checker would get it: through events and back. */
function generated(seed: number, g: GenOptions): Operation[] {
  const ops = operations(toEvents(registerHistory(seed, g)))
  expect(ops.length).toBe(normalize(registerHistory(seed, g)).length)
  return ops
}

const takesEffect = (o: Operation) =>
  o.status === 'ok' && (o.f === 'write' || (o.f === 'cas' && (o.output as CasOutput).ok))

/** Mutations that make any history non-linearizable; each returns the mutated op, or undefined. */
const mutations: Record<string, (ops: Operation[], pick: number) => Operation | undefined> = {
  // A read returns a value overwritten by a write that completed before the read began.
  staleRead(ops, pick) {
    const reads = ops.filter((o) => o.f === 'read' && o.status === 'ok')
    for (let k = 0; k < reads.length; k++) {
      const read = reads[(pick + k) % reads.length]!
      for (const old of ops.filter(takesEffect)) {
        const newer = ops.find((o) => takesEffect(o) && old.ret < o.call && o.ret < read.call)
        const value = old.f === 'write' ? old.input : (old.output as CasOutput).value
        if (newer && read.output !== value) {
          read.output = value
          return read
        }
      }
    }
    return undefined
  },
  // A read returns a value whose write was invoked only after the read returned.
  futureRead(ops, pick) {
    const reads = ops.filter((o) => o.f === 'read' && o.status === 'ok')
    for (let k = 0; k < reads.length; k++) {
      const read = reads[(pick + k) % reads.length]!
      const later = ops.find((o) => o.f === 'write' && o.status !== 'fail' && o.call > read.ret)
      if (later) {
        read.output = later.input
        return read
      }
    }
    return undefined
  },
  // A successful cas claims it failed and found its own new value in place.
  casSelfFail(ops, pick) {
    const swaps = ops.filter((o) => o.f === 'cas' && o.status === 'ok' && (o.output as CasOutput).ok)
    const c = swaps[pick % Math.max(1, swaps.length)]
    if (!c) return undefined
    c.output = { ok: false, value: (c.input as CasInput).value }
    return c
  },
  // A write that certainly failed is what a later read sees.
  failedSeen(ops, pick) {
    const failed = ops.filter((o) => o.status === 'fail')
    const f = failed[pick % Math.max(1, failed.length)]
    const read = f && ops.find((o) => o.f === 'read' && o.status === 'ok' && o.call > f.ret)
    if (!f || !read) return undefined
    read.output = f.input
    return read
  },
}

describe('register checker on generated histories', () => {
  it('accepts every history generated from the sequential model', () => {
    fc.assert(
      fc.property(fc.integer(), genOptions, (seed, g) => {
        const verdicts = checkRegister(generated(seed, g))
        for (const v of verdicts) expect(v.verdict).toBe('ok')
      }),
      { seed: SEED, numRuns: 400 },
    )
  })

  for (const [name, mutate] of Object.entries(mutations)) {
    it(`rejects every generated history mutated by ${name}, naming the mutated op`, () => {
      fc.assert(
        fc.property(fc.integer(), genOptions, fc.nat(), (seed, g, pick) => {
          const ops = generated(seed, g)
          const changed = mutate(ops, pick)
          fc.pre(changed !== undefined)
          expect(linearizable(registerModel, ops)).toBe('violation')
          const v = minimalViolation(registerModel, ops)!
          expect(v.ops.length).toBeGreaterThan(0)
          expect(v.ops.map((o) => o.id)).toContain(changed!.id)
          expectOneMinimal(ops, v.at, v.ops)
        }),
        { seed: SEED, numRuns: 150 },
      )
    })
  }

  it('agrees with the brute-force definition on small random histories', () => {
    const value = fc.constantFrom(null, 'a', 'b', 'c')
    const written = fc.constantFrom('a', 'b', 'c')
    const anOp = fc.record({
      f: fc.constantFrom('read', 'write', 'cas'),
      call: fc.integer({ min: 0, max: 20 }),
      length: fc.integer({ min: 0, max: 12 }),
      status: fc.constantFrom('ok', 'ok', 'ok', 'info', 'fail'),
      read: value,
      write: written,
      expect: value,
      swapped: fc.boolean(),
    })
    fc.assert(
      fc.property(fc.array(anOp, { minLength: 1, maxLength: 7 }), (spec) => {
        const ops: Operation[] = spec.map((s, id) => {
          const input =
            s.f === 'read' ? null : s.f === 'write' ? s.write : { expect: s.expect, value: s.write }
          const output =
            s.f === 'read'
              ? s.read
              : s.f === 'write'
                ? 'ok'
                : { ok: s.swapped, value: s.swapped ? s.write : s.read }
          const info = s.status === 'info'
          return {
            id,
            process: id,
            f: s.f,
            key: 'x',
            input,
            output: info ? undefined : output,
            status: s.status as Operation['status'],
            call: s.call,
            ret: info ? Number.POSITIVE_INFINITY : s.call + s.length,
          }
        })
        const expected = bruteForce(registerModel, ops)
        expect(linearizable(registerModel, ops)).toBe(expected ? 'ok' : 'violation')
        if (!expected) {
          const v = minimalViolation(registerModel, ops)!
          expectOneMinimal(ops, v.at, v.ops)
        }
      }),
      { seed: SEED, numRuns: 3_000 },
    )
  })

  it('stays within its budget on a long history with many unknown outcomes', () => {
    const ops = generated(SEED, {
      steps: 3_000,
      window: 80,
      infoPercent: 30,
      phantomPercent: 30,
      failPercent: 5,
    })
    expect(linearizable(registerModel, ops)).toBe('ok')
  })
})

/**
 * The violation is 1-minimal: in the cut, with every other op's outcome forgotten, the named ops
 * cannot be linearized, and forgetting any one of them more makes the cut linearizable.
 */
function expectOneMinimal(ops: Operation[], at: number, core: Operation[]): void {
  const ids = new Set(core.map((o) => o.id))
  const base = cutAt(
    ops.filter((o) => o.status !== 'fail'),
    at,
  ).map((o) => (ids.has(o.id) ? o : weaken(o)))
  expect(linearizable(registerModel, base)).toBe('violation')
  for (const c of core) {
    const less = base.map((o) => (o.id === c.id ? weaken(o) : o))
    expect(linearizable(registerModel, less)).not.toBe('violation')
  }
}
