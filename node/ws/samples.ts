/** A bounded window of recent durations, for percentiles in status output. */
export class DurationSamples {
  private readonly ring: Float64Array
  private count = 0

  constructor(size: number) {
    if (!(Number.isInteger(size) && size > 0))
      throw new RangeError(`Bad sample window '${size}': expected a positive integer`)
    this.ring = new Float64Array(size)
  }

  add(ms: number): void {
    this.ring[this.count % this.ring.length] = ms
    this.count++
  }

  /** p50, p99 and max of the window in milliseconds (rounded to 0.01), and how many were ever added. */
  summary(): { count: number; p50Ms: number; p99Ms: number; maxMs: number } {
    const n = Math.min(this.count, this.ring.length)
    if (n === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 }
    const sorted = Array.from(this.ring.subarray(0, n)).sort((a, b) => a - b)
    const at = (p: number) => Math.round(sorted[Math.min(n - 1, Math.floor(p * n))]! * 100) / 100
    return { count: this.count, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) }
  }
}
