/** What the benchmark scripts share (bench/ws-load.ts and bench/tcp-floor.ts run as processes of their own). */

/** The `p`th percentile of ascending `sorted` (NaN when empty). */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

/**
 * Runs `run` on the JSON config in `argv[2]`, writes its result as one JSON line to stdout and
 * exits 0; on failure writes the error to stderr and exits 1.
 */
export function runAsScript<C, R>(run: (config: C) => Promise<R>): void {
  run(JSON.parse(process.argv[2] ?? '{}') as C).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`)
      process.exit(0)
    },
    (e: unknown) => {
      process.stderr.write(`${String((e as Error).stack ?? e)}\n`)
      process.exit(1)
    },
  )
}
