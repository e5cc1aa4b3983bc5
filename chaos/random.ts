/**
 * Seeded randomness for chaos runs: every choice of a run (operations, targets, faults, timings)
 * comes from one seed, split into independent streams, so a seed names a run. (Process timing
 * still varies between runs on a real machine; the seed fixes every choice the harness makes.)
 */

/** A seeded source of random choices (mulberry32). */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
  /** Uniform in [lo, hi]. */
  between(lo: number, hi: number): number
  pick<T>(items: readonly T[]): T
  shuffle<T>(items: readonly T[]): T[]
}

export function seededRandom(seed: number): Random {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const r: Random = {
    next,
    int: (n) => Math.floor(next() * n),
    between: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (items) => {
      if (items.length === 0) throw new RangeError('Cannot pick from an empty list')
      return items[r.int(items.length)]!
    },
    shuffle: (items) => {
      const out = [...items]
      for (let i = out.length - 1; i > 0; i--) {
        const j = r.int(i + 1)
        ;[out[i], out[j]] = [out[j]!, out[i]!]
      }
      return out
    },
  }
  return r
}

/** An independent stream for `label` derived from `seed` (FNV-1a of the label mixed in). */
export function stream(seed: number, label: string): Random {
  let h = 0x811c9dc5 ^ seed
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193)
  return seededRandom(h >>> 0)
}
