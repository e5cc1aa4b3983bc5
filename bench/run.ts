/**
 * `npm run bench [-- <group> ...] [--quick] [--source]`: runs benchmark groups (every file in
 * bench/groups/), prints one table with each figure beside its target, and merges the flat keys
 * into bench/results.json so that running one group keeps the others' figures.
 *
 * Node processes run what a deployment runs: the `tsc` build, made first (`dist/node/cli.js`,
 * ~8 s). `--source` runs them through tsx instead (`bin/actormesh.js`), which costs ~8% more CPU
 * a call: tsx's transform names every function at run time, each closure made per call included.
 * `ACTORMESH_CLI` set in the environment names the CLI file to run and skips the build.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { BenchFigure, BenchGroup } from './types.js'

const here = dirname(fileURLToPath(import.meta.url))
const groupsDir = join(here, 'groups')
const resultsPath = join(here, 'results.json')
const root = join(here, '..')

/** Builds the project and makes every node process the benchmarks start run the build. */
function useBuild(): void {
  console.log('# building (tsc -p tsconfig.build.json): node processes run dist/node/cli.js')
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  })
  process.env.ACTORMESH_CLI = join(root, 'dist', 'node', 'cli.js')
}

function availableGroups(): string[] {
  return readdirSync(groupsDir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort()
}

function printTable(rows: BenchFigure[]): void {
  const header = ['figure', 'value', 'unit', 'target', 'note']
  const cells = rows.map((r) => [r.key, formatValue(r.value), r.unit, r.target ?? '', r.note ?? ''])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join('  ')
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const c of cells) console.log(line(c))
}

function formatValue(v: number): string {
  if (Number.isInteger(v)) return String(v)
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const quick = args.includes('--quick')
  const known = availableGroups()
  const asked = args.filter((a) => !a.startsWith('--'))
  for (const name of asked) {
    if (!known.includes(name)) {
      console.error(`Unknown benchmark group '${name}'; known groups: ${known.join(', ')}`)
      process.exit(2)
    }
  }
  const selected = asked.length > 0 ? asked : known
  if (!args.includes('--source') && process.env.ACTORMESH_CLI === undefined) useBuild()
  const figures: BenchFigure[] = []
  for (const name of selected) {
    console.log(`# ${name}`)
    const mod = (await import(pathToFileURL(join(groupsDir, `${name}.ts`)).href)) as { default: BenchGroup }
    const out = await mod.default({ quick, log: (line) => console.log(`  ${line}`) })
    figures.push(...out)
  }
  printTable(figures)
  const previous = existsSync(resultsPath)
    ? (JSON.parse(readFileSync(resultsPath, 'utf8')) as Record<string, unknown>)
    : {}
  const merged: Record<string, unknown> = { ...previous }
  for (const f of figures) merged[f.key] = f.value
  merged._machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown cpu'}, node ${process.version}`
  merged._updated = new Date().toISOString()
  writeFileSync(resultsPath, `${JSON.stringify(merged, null, 2)}\n`)
  console.log(`wrote ${resultsPath}`)
}

await main()
