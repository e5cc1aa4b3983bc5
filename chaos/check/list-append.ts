/**
 * The list-append check (examples/list-append): `append v` → the list's new length, `read` → the
 * whole list. Cheaper than a full linearizability search and sharp about lost writes: per key,
 *
 * - no read holds a value twice (`duplicate`), or a value no append wrote (`phantom`), or one whose
 *   append certainly failed (`failed-applied`);
 * - every read is a prefix of the final list, the last read to complete (`order`): all readers
 *   agree on one order;
 * - an append acknowledged before a read began is in that read (`lost` for the final read,
 *   `stale-read` otherwise), and a read that began after another ended is at least as long
 *   (`non-monotonic`);
 * - an acknowledged append that answered length n sits at position n in the final list
 *   (`position`).
 */
import { byKey, type Operation } from './history.js'

/** One broken rule, with the ops that break it. */
export interface ListViolation {
  key: string
  kind:
    | 'duplicate'
    | 'phantom'
    | 'failed-applied'
    | 'order'
    | 'lost'
    | 'stale-read'
    | 'non-monotonic'
    | 'position'
  message: string
  ops: number[]
}

/** What the check found for one key. */
export interface ListKeyResult {
  key: string
  appends: { ok: number; fail: number; info: number }
  reads: number
  finalLength: number
  violations: ListViolation[]
}

/** Checks every key's list-append history; the last `ok` read of a key is its final list. */
export function checkListAppend(ops: readonly Operation[]): ListKeyResult[] {
  const groups = byKey(ops)
  return [...groups.keys()].sort().map((key) => checkKey(key, groups.get(key)!))
}

function checkKey(key: string, ops: Operation[]): ListKeyResult {
  const appends = ops.filter((op) => op.f === 'append')
  const reads = ops.filter((op) => op.f === 'read' && op.status === 'ok')
  const final = reads.reduce<Operation | undefined>((a, r) => (!a || r.ret > a.ret ? r : a), undefined)
  const finalList = (final?.output as string[] | undefined) ?? []
  const v: ListViolation[] = []
  const writer = new Map<string, Operation>()
  for (const a of appends) writer.set(a.input as string, a)
  for (const r of reads) checkRead(key, r, writer, finalList, final!, v)
  for (const a of appends) {
    if (a.status !== 'ok') continue
    for (const r of reads) {
      if (a.ret >= r.call || (r.output as string[]).includes(a.input as string)) continue
      const lost = r === final
      v.push({
        key,
        kind: lost ? 'lost' : 'stale-read',
        message: `append '${a.input}' was acknowledged before ${lost ? 'the final' : 'a'} read began, but the read lacks it`,
        ops: [a.id, r.id],
      })
    }
    const n = Number(a.output)
    const at = finalList.indexOf(a.input as string)
    if (final && at >= 0 && at !== n - 1) {
      v.push({
        key,
        kind: 'position',
        message: `append '${a.input}' answered length ${n} but sits at position ${at + 1} of the final list`,
        ops: [a.id, final.id],
      })
    }
  }
  for (const r1 of reads) {
    for (const r2 of reads) {
      if (r1.ret < r2.call && (r1.output as string[]).length > (r2.output as string[]).length) {
        v.push({
          key,
          kind: 'non-monotonic',
          message: `a read saw ${(r1.output as string[]).length} items, a later one only ${(r2.output as string[]).length}`,
          ops: [r1.id, r2.id],
        })
      }
    }
  }
  const count = (s: string) => appends.filter((a) => a.status === s).length
  return {
    key,
    appends: { ok: count('ok'), fail: count('fail'), info: count('info') },
    reads: reads.length,
    finalLength: finalList.length,
    violations: v,
  }
}

function checkRead(
  key: string,
  r: Operation,
  writer: Map<string, Operation>,
  finalList: string[],
  final: Operation,
  v: ListViolation[],
): void {
  const list = r.output as string[]
  const seen = new Set<string>()
  for (const item of list) {
    const w = writer.get(item)
    if (seen.has(item))
      v.push({
        key,
        kind: 'duplicate',
        message: `a read holds '${item}' twice`,
        ops: [r.id, ...(w ? [w.id] : [])],
      })
    seen.add(item)
    if (!w)
      v.push({ key, kind: 'phantom', message: `a read holds '${item}', which no append wrote`, ops: [r.id] })
    else if (w.status === 'fail')
      v.push({
        key,
        kind: 'failed-applied',
        message: `a read holds '${item}', whose append failed for certain (${w.error ?? 'fail'})`,
        ops: [r.id, w.id],
      })
  }
  const diverge = list.findIndex((item, i) => finalList[i] !== item)
  if (diverge >= 0) {
    v.push({
      key,
      kind: 'order',
      message: `a read is not a prefix of the final list: item ${diverge + 1} is '${list[diverge]}', finally '${finalList[diverge] ?? '(none)'}'`,
      ops: [r.id, final.id],
    })
  }
}
