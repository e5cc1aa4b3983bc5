/**
 * `actormesh restore --from FILE --data DIR [--key-file FILE] [--no-start] [start flags]`: a new
 * cluster from an archive (node/backup/bootstrap.ts), then the node runs as `start` would.
 * `actormesh restore --from FILE --node URL --namespace NAME [--key-file FILE]`: rolls one
 * namespace of a running cluster back to its archived state through Raft (node/backup/rollback.ts).
 * The archive is verified whole before anything is changed.
 */

import { readArchive, verifyArchive } from './archive.js'
import { restoreToDataDir } from './bootstrap.js'
import { adminJson, mb, nodeUrl, ProgressView } from './client.js'
import { loadArchiveKey } from './crypto.js'
import { ArchiveCorruptError, RestoreTargetError } from './errors.js'
import type { CopyMeta } from './routes.js'
import type { CommandIo } from './snapshot-command.js'

/** The flags `restore` takes itself; everything else goes to `start`. */
const OWN = new Set(['--from', '--key-file', '--node', '--namespace', '--token'])

/** Splits `restore`'s arguments into its own flags and the rest (start flags; `--data` is both). */
export function splitRestoreArgs(
  argv: string[],
  usage: (message: string) => Error,
): { own: Record<string, string>; noStart: boolean; start: string[] } {
  const own: Record<string, string> = {}
  const start: string[] = []
  let noStart = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const eq = arg.indexOf('=')
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    if (flag === '--no-start') {
      noStart = true
      continue
    }
    if (!OWN.has(flag) && flag !== '--data') {
      start.push(arg)
      continue
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined || value.startsWith('--')) throw usage(`Flag ${flag} needs a value`)
    if (own[flag.slice(2)] !== undefined) throw usage(`Flag ${flag} given twice`)
    own[flag.slice(2)] = value
    if (flag === '--data') start.push('--data', value)
  }
  return { own, noStart, start }
}

/**
 * `actormesh restore …`. With `--data`, restores and then calls `startNode` with the start flags
 * (unless `--no-start`); with `--node`, rolls a namespace back.
 */
export async function runRestoreCommand(
  argv: string[],
  io: CommandIo,
  startNode: (argv: string[]) => Promise<void>,
): Promise<void> {
  const { own, noStart, start } = splitRestoreArgs(argv, io.usage)
  if (!own.from) throw io.usage('restore needs --from FILE')
  if ((own.data === undefined) === (own.node === undefined))
    throw io.usage(
      'restore needs either --data DIR (a new cluster) or --node URL --namespace NAME (a rollback)',
    )
  const key = own['key-file'] ? await loadArchiveKey(own['key-file']) : undefined
  const view = new ProgressView(io.err)
  if (own.node !== undefined) {
    if (!own.namespace) throw io.usage('restore --node needs --namespace NAME')
    if (start.length > 0) throw io.usage(`restore --node takes no start flags (got '${start[0]}')`)
    const answer = await rollbackNamespace(
      own.from,
      nodeUrl(own.node, io.usage),
      own.namespace,
      key,
      view,
      own.token,
    )
    io.out.write(
      `Restored namespace '${answer.namespace}' to its archived state (index ${answer.from.index}) at log index ${answer.index} on ${answer.replicas.length} replicas (staged in ${answer.stageMs} ms)\n`,
    )
    return
  }
  const restored = await restoreToDataDir(own.from, own.data!, {
    ...(key ? { key } : {}),
    onProgress: (e) => {
      if (e.kind === 'read')
        view.bar(e.bytes / Math.max(1, e.total), `restoring ${mb(e.bytes)} of ${mb(e.total)}`)
      else view.line(`restore: namespace '${e.namespace}' at index ${e.index}, ${mb(e.bytes)} of state`)
    },
  })
  view.end()
  io.out.write(
    `Restored ${restored.manifest.namespaces.length} namespaces into ${restored.dataDir} as a new cluster; node ${restored.peer}\n`,
  )
  if (!noStart) await startNode(start)
}

/** What the rollback route answers. */
interface RollbackAnswer {
  namespace: string
  index: number
  from: { index: number; term: number }
  replicas: string[]
  stageMs: number
}

/** Verifies the whole archive, then streams namespace `name`'s copy to the node's rollback route. */
export async function rollbackNamespace(
  from: string,
  node: string,
  name: string,
  key: Uint8Array | undefined,
  view?: ProgressView,
  token?: string,
): Promise<RollbackAnswer> {
  const manifest = await verifyArchive(from, {
    ...(key ? { key } : {}),
    onProgress: (p) =>
      view?.bar(p.bytes / Math.max(1, p.total), `verifying ${mb(p.bytes)} of ${mb(p.total)}`),
  })
  const ns = manifest.namespaces.find((n) => n.name === name)
  if (!ns)
    throw new RestoreTargetError(
      `Cannot restore namespace '${name}': the archive holds ${manifest.namespaces.map((n) => `'${n.name}'`).join(', ') || 'none'}`,
    )
  const part = manifest.parts.find((p) => p.name === ns.part)!
  const meta: CopyMeta = {
    namespace: name,
    index: ns.index,
    term: ns.term,
    bytes: part.bytes,
    sha256: part.sha256,
    modules: ns.modules,
  }
  const body = copyStream(from, key, ns.part, meta, view)
  return adminJson<RollbackAnswer>(node, `/v1/admin/restore/namespace/${encodeURIComponent(name)}`, {
    method: 'PUT',
    body: body as unknown as RequestInit['body'],
    duplex: 'half',
    retryMs: 0,
    token,
  } as RequestInit)
}

/** The framed copy of one member: meta, then its bytes as the archive reader checks them. */
async function* copyStream(
  from: string,
  key: Uint8Array | undefined,
  member: string,
  meta: CopyMeta,
  view?: ProgressView,
): AsyncGenerator<Uint8Array> {
  const json = Buffer.from(JSON.stringify(meta))
  const head = Buffer.alloc(4)
  head.writeUInt32BE(json.byteLength)
  yield Buffer.concat([head, json])
  let sent = 0
  for await (const item of readArchive(from, key ? { key } : {})) {
    if (item.kind !== 'part' || item.part.name !== member) continue
    for await (const chunk of item.chunks) {
      sent += chunk.byteLength
      view?.bar(sent / meta.bytes, `uploading ${mb(sent)} of ${mb(meta.bytes)}`)
      yield chunk
    }
    view?.end()
    return
  }
  throw new ArchiveCorruptError(`Cannot restore: member '${member}' disappeared from '${from}' while reading`)
}
