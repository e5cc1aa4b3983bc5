/**
 * `npm run chaos -- --scenario NAME [--nodes 5] [--seconds 60] [--seed S]`, `--all`, or
 * `--suite ci`: runs chaos scenarios against real node processes and checks them. Each run writes
 * chaos/out/<run>/{history.jsonl, report.json, timeline.html, node-*.log}. Ends with
 * `N passed, M failed`; the exit status is 1 when any run failed, 2 on bad usage.
 */
import { randomInt } from 'node:crypto'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { closeAgent } from './http.js'
import { scenarios } from './nemesis.js'
import { type RunResult, runScenario } from './run.js'

/** The CI suite: scenarios, each with this many seconds of faults, on 3 nodes (about 4 minutes). */
const CI_SUITE = ['halves', 'isolate-leader', 'kill-leader', 'pause-leader', 'flaky', 'mix']
const CI_SECONDS = 15

const USAGE = `Usage: npm run chaos -- (--scenario NAME | --all | --suite ci) [flags]

  --scenario NAME   one of: ${Object.keys(scenarios).join(', ')}
  --all             every scenario in turn
  --suite ci        the CI suite: 3 nodes, ${CI_SECONDS} s each of ${CI_SUITE.join(', ')}
  --nodes N         node processes (default 3; --suite ci always 3)
  --seconds S       seconds of faults per scenario (default 30)
  --seed S          seed of every choice (default: random, printed); scenario i of a list uses S + i
  --clients N       clients per workload (default 3)
  --recovery-ms MS  bound on recovery after the faults heal (default 30000)
  --out DIR         output root (default chaos/out)
  --node-log-level L  the nodes' log level (default warn; logs in node-<i>.log)
  --keep            keep the nodes' data directories even when a run passes
  --stale-reads     register reads with ?consistency=stale — not linearizable, so runs should FAIL:
                    a check of the checker and the harness end to end
`

class UsageError extends Error {}

function positive(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`Invalid ${flag} '${text}': expected a positive whole number`)
  return n
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', multiple: true },
      all: { type: 'boolean' },
      suite: { type: 'string' },
      nodes: { type: 'string' },
      seconds: { type: 'string' },
      seed: { type: 'string' },
      clients: { type: 'string' },
      'recovery-ms': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean' },
      'node-log-level': { type: 'string' },
      'stale-reads': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  let names: string[]
  let nodes = positive(values.nodes, '--nodes', 3)
  let seconds = positive(values.seconds, '--seconds', 30)
  if (values.suite !== undefined) {
    if (values.suite !== 'ci') throw new UsageError(`Unknown suite '${values.suite}': the only suite is 'ci'`)
    names = CI_SUITE
    nodes = 3
    seconds = values.seconds === undefined ? CI_SECONDS : seconds
  } else if (values.all) names = Object.keys(scenarios)
  else if (values.scenario?.length) names = values.scenario
  else throw new UsageError('Give --scenario NAME, --all or --suite ci')
  for (const name of names) {
    if (!scenarios[name])
      throw new UsageError(`Unknown scenario '${name}': use one of ${Object.keys(scenarios).join(', ')}`)
  }
  if (nodes < 3) throw new UsageError(`Invalid --nodes '${nodes}': at least 3 (namespaces have 3 replicas)`)
  const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed)
  if (!Number.isInteger(seed)) throw new UsageError(`Invalid --seed '${values.seed}': expected an integer`)
  const clients = positive(values.clients, '--clients', 3)
  const recoveryBoundMs = positive(values['recovery-ms'], '--recovery-ms', 30_000)
  const outRoot = values.out ?? join(import.meta.dirname, 'out')
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  process.stdout.write(`chaos: ${names.join(', ')} on ${nodes} nodes, ${seconds} s each, seed ${seed}\n`)

  const results: RunResult[] = []
  for (const [i, name] of names.entries()) {
    const runSeed = seed + i
    const outDir = join(outRoot, `${stamp}-${name}-${runSeed}`)
    const log = (line: string) => process.stdout.write(`  [${name}] ${line}\n`)
    log(`seed ${runSeed}, output ${outDir}`)
    try {
      const r = await runScenario({
        scenario: scenarios[name]!,
        nodes,
        seconds,
        seed: runSeed,
        outDir,
        clients,
        keepData: values.keep === true,
        staleReads: values['stale-reads'] === true,
        ...(values['node-log-level'] ? { nodeLogLevel: values['node-log-level'] } : {}),
        recoveryBoundMs,
        log,
      })
      results.push(r)
      for (const c of r.checks) log(`${c.passed ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`)
      log(`${r.passed ? 'passed' : 'FAILED'} — ${join(outDir, 'timeline.html')}`)
    } catch (e) {
      log(`FAILED to run: ${(e as Error).stack ?? String(e)}`)
      results.push({ scenario: name, seed: runSeed, passed: false, checks: [], outDir })
    }
  }
  closeAgent()
  const failed = results.filter((r) => !r.passed)
  for (const r of failed) {
    process.stdout.write(
      `failed: ${r.scenario} — replay with npm run chaos -- --scenario ${r.scenario} --nodes ${nodes} --seconds ${seconds} --seed ${r.seed}\n`,
    )
  }
  process.stdout.write(`${results.length - failed.length} passed, ${failed.length} failed\n`)
  return failed.length > 0 ? 1 : 0
}

// Ctrl-C or a CI timeout: exit, which kills every node process still running (chaos/cluster.ts).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`chaos: ${signal}, stopping the nodes\n`)
    process.exit(130)
  })
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    process.stderr.write(`chaos: ${(e as Error).message}\n${usage ? `\n${USAGE}` : ''}`)
    process.exit(usage ? 2 : 1)
  },
)
