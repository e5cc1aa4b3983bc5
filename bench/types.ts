/** One figure a benchmark group measured. Figures are printed and recorded, never asserted. */
export interface BenchFigure {
  /** Flat key in bench/results.json, e.g. `raft.inmem_entries_per_s`. */
  key: string
  value: number
  unit: string
  /** The target, as text beside the figure, e.g. `>= 300000`. */
  target?: string
  /** Anything a reader needs to interpret the figure (machine, parameters). */
  note?: string
}

/** A benchmark group: `bench/groups/<name>.ts` default-exports one of these. */
export type BenchGroup = (options: { quick: boolean; log: (line: string) => void }) => Promise<BenchFigure[]>
