/**
 * The simulator's only source of randomness: mulberry32, a 32-bit generator with a 32-bit state.
 * Seed → stream: the state starts at `seed >>> 0`; each draw adds 0x6d2b79f5 to the state and
 * returns a mix of it, so one seed always yields the same stream on every platform (only 32-bit
 * integer arithmetic, no floating point until the final scaling).
 */
export class Prng {
  private state: number

  constructor(seed: number) {
    this.state = seed >>> 0
  }

  /** The next raw draw, an unsigned 32-bit integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new RangeError(`Cannot draw an integer below '${n}': the bound must be positive`)
    return Math.floor((this.next() / 4294967296) * n)
  }

  /** True with probability `p` (0 ≤ p ≤ 1). */
  chance(p: number): boolean {
    return p > 0 && this.next() / 4294967296 < p
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T
  }

  /** The `(n) => [0, n)` function that `RawNode` takes as its random source. */
  asRandomInt(): (n: number) => number {
    return (n) => this.int(n)
  }
}

/**
 * Derives an independent seed for a sub-stream (a node's election timer, an incarnation), so that
 * adding draws to one stream never shifts another: a fixed mix of the parent seed and the labels.
 */
export function deriveSeed(seed: number, ...labels: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0
  for (const label of labels) {
    h = Math.imul(h ^ (label >>> 0), 0x85ebca6b) >>> 0
    h = (h ^ (h >>> 13)) >>> 0
    h = Math.imul(h, 0xc2b2ae35) >>> 0
    h = (h ^ (h >>> 16)) >>> 0
  }
  return h
}

/** FNV-1a over a string, continuing from `hash` (used for the trace hash). */
export function fnv1a(text: string, hash = 0x811c9dc5): number {
  let h = hash >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}
