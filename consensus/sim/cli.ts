/**
 * `npm run sim -- --seeds 100000 [--from N] [--steps 500] [--nodes 5] [--no-faults]` runs many
 * seeds and prints progress and a summary; on a failure it prints the seed and the command that
 * replays it. `npm run sim -- --replay SEED [--steps 500] [--nodes 5]` replays one seed and prints
 * its trace (the last `--tail` lines, default 60) and the failure, if any. `--broken forget-vote|send-before-persist`
 * runs a deliberately broken Raft (see `SimulationOptions.broken`).
 */
import { parseArgs } from 'node:util'
import type { BrokenMode } from './node.js'
import { replay, replayCommand, runSimulation, SimulationFailure } from './run.js'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    from: { type: 'string', default: '0' },
    steps: { type: 'string', default: '500' },
    nodes: { type: 'string', default: '5' },
    replay: { type: 'string' },
    tail: { type: 'string', default: '60' },
    'no-faults': { type: 'boolean', default: false },
    broken: { type: 'string' },
  },
})

function int(name: string, text: string | undefined): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`Cannot use --${name} '${text}': not a whole number`)
  return n
}

const steps = int('steps', values.steps)
const nodes = int('nodes', values.nodes)
const faults = !values['no-faults']
const BROKEN_MODES: readonly BrokenMode[] = ['forget-vote', 'send-before-persist']
const broken = BROKEN_MODES.find((m) => m === values.broken)
if (values.broken !== undefined && broken === undefined) {
  throw new RangeError(`Cannot simulate broken mode '${values.broken}': use ${BROKEN_MODES.join(' or ')}`)
}

if (values.replay !== undefined) {
  const seed = int('replay', values.replay)
  const tail = int('tail', values.tail)
  // Run once with the trace kept even on failure: trace lines are collected before the throw.
  const trace: string[] = []
  try {
    const result = replay(seed, {
      steps,
      nodes,
      faults,
      ...(broken ? { broken } : {}),
      onTrace: (line) => trace.push(line),
    })
    for (const line of trace.slice(-tail)) console.log(line)
    console.log(JSON.stringify(result.stats, null, 2))
    console.log(`seed ${seed}: ok, trace hash ${result.traceHash}`)
  } catch (e) {
    for (const line of trace.slice(-tail)) console.log(line)
    console.log(e instanceof Error ? (e.stack ?? e.message) : String(e))
    process.exitCode = 1
  }
} else {
  const count = int('seeds', values.seeds)
  const from = int('from', values.from)
  const started = performance.now()
  const totals = { leadersElected: 0, committed: 0, snapshotsInstalled: 0, confChangesApplied: 0, crashes: 0 }
  let failures = 0
  const progressEvery = Math.max(1, Math.floor(count / 20))
  for (let seed = from; seed < from + count; seed++) {
    try {
      const r = runSimulation({ seed, steps, nodes, faults, ...(broken ? { broken } : {}) })
      totals.leadersElected += r.stats.leadersElected
      totals.committed += r.stats.commitIndex
      totals.snapshotsInstalled += r.stats.snapshotsInstalled
      totals.confChangesApplied += r.stats.confChangesApplied
      totals.crashes += r.stats.crashes
    } catch (e) {
      failures++
      console.log(e instanceof SimulationFailure ? e.message : `seed ${seed}: ${String(e)}`)
      if (!(e instanceof SimulationFailure))
        console.log(
          `  replay: ${replayCommand({ seed, steps, nodes, faults, ...(broken ? { broken } : {}) })}`,
        )
      if (failures >= 10) break
    }
    const done = seed - from + 1
    if (done % progressEvery === 0) {
      const s = (performance.now() - started) / 1000
      console.log(`${done}/${count} seeds, ${failures} failed, ${s.toFixed(1)} s`)
    }
  }
  const s = (performance.now() - started) / 1000
  console.log(`summary: seeds ${from}..${from + count - 1}, ${failures} failed, ${s.toFixed(1)} s`)
  console.log(`totals: ${JSON.stringify(totals)}`)
  if (failures > 0) process.exitCode = 1
}
