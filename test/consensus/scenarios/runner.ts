/**
 * Scenario scripts (in the manner of etcd's datadriven interaction tests): a text file of blocks,
 * each one command line, a `----` line and the command's expected output, blocks separated by a
 * blank line. Lines starting with `#` before a command are comments and are kept on rewrite.
 *
 * `runScript` runs every block against one fresh cluster and renders the file with the actual
 * outputs; a script passes when that rendering equals the file. With UPDATE_SCENARIOS=1 the test
 * writes the rendering back (the expected outputs must then be read and checked by hand).
 *
 * A block that shows a known bug carries a `# known-bug: ...` comment: its expected output is the
 * correct behaviour, it is checked by its own test that is expected to fail (so fixing the bug
 * turns it red until the marker is removed), and it is never rewritten.
 */
import { describeError, ScenarioCluster } from './cluster.js'
import { runCommand } from './commands.js'

/** One block of a script. `line` is the 1-based line of its command. */
export interface Block {
  comments: string[]
  command: string
  expected: string[]
  line: number
  /** The text after `# known-bug:` in the block's comments, if any. */
  knownBug?: string
}

export interface Script {
  blocks: Block[]
  /** Comments after the last block. */
  trailing: string[]
}

export function parseScript(text: string): Script {
  const lines = text.split('\n')
  const blocks: Block[] = []
  let comments: string[] = []
  let i = 0
  while (i < lines.length) {
    const line = lines[i]!
    if (line.trim() === '') {
      i++
      continue
    }
    if (line.startsWith('#')) {
      comments.push(line)
      i++
      continue
    }
    if (lines[i + 1] !== '----')
      throw new SyntaxError(`Cannot parse scenario line ${i + 1}: '${line}' is not followed by '----'`)
    const block: Block = { comments, command: line, expected: [], line: i + 1 }
    const bug = comments.find((c) => c.startsWith('# known-bug:'))
    if (bug) block.knownBug = bug.slice('# known-bug:'.length).trim()
    comments = []
    i += 2
    while (i < lines.length && lines[i]!.trim() !== '') block.expected.push(lines[i++]!)
    blocks.push(block)
  }
  return { blocks, trailing: comments }
}

/**
 * Renders a script with the given outputs (one list of lines per block). Known-bug blocks keep
 * their expected output: it states the correct behaviour, which the code does not show yet.
 */
export function renderScript(script: Script, outputs: string[][]): string {
  const parts: string[] = []
  script.blocks.forEach((b, i) => {
    const out = b.knownBug !== undefined ? b.expected : (outputs[i] ?? b.expected)
    parts.push([...b.comments, b.command, '----', ...out].join('\n'))
  })
  if (script.trailing.length > 0) parts.push(script.trailing.join('\n'))
  return `${parts.join('\n\n')}\n`
}

/**
 * Runs every block of `script` against a fresh cluster. A command that throws prints
 * `error: ...` as its output, so scripts can expect refusals. Outputs never hold blank lines.
 */
export function runScript(script: Script): string[][] {
  const cluster = new ScenarioCluster()
  return script.blocks.map((b) => {
    let out: string[]
    try {
      out = runCommand(cluster, b.command)
    } catch (e) {
      out = [`error: ${describeError(e)}`]
    }
    if (out.length === 0) out = ['ok']
    return out.map((l) => (l.trim() === '' ? '.' : l))
  })
}

/** The first block (not a known bug) whose output differs, for a failure message with a line. */
export function firstMismatch(script: Script, outputs: string[][]): Block | undefined {
  return script.blocks.find(
    (b, i) => b.knownBug === undefined && (outputs[i] ?? []).join('\n') !== b.expected.join('\n'),
  )
}
