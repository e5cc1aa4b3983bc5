/**
 * `actormesh snapshot --node URL --out FILE [--namespace NAME ...] [--key-file FILE]` and
 * `actormesh snapshot verify FILE [--key-file FILE]` (docs/backup.md).
 *
 * For each namespace: a linearizable barrier (ReadIndex on its leader: every write acknowledged
 * before it is at or below the index it returns), then a consistent copy at an applied index at or
 * after it, streamed into the archive; the catalog and the manifest last.
 */
import { parseArgs } from 'node:util'
import type { CatalogNamespace, CatalogNode } from '../catalog.js'
import { ArchiveWriter, verifyArchive } from './archive.js'
import { adminJson, adminRequest, mb, nodeUrl, ProgressView } from './client.js'
import { loadArchiveKey } from './crypto.js'
import {
  ARCHIVE_FORMAT_VERSION,
  type ArchivedNamespace,
  type ArchiveManifest,
  type ArchivePart,
  partName,
} from './manifest.js'
import { type CopyMeta, readCopyMeta } from './routes.js'

/** What the catalog route answers. */
interface CatalogAnswer {
  peer: string
  systemLeader: string
  nodes: CatalogNode[]
  namespaces: CatalogNamespace[]
}

/** Progress of a snapshot, as events (the CLI draws them). */
export type SnapshotEvent =
  | { kind: 'start'; namespaces: string[] }
  | { kind: 'bytes'; namespace: string; bytes: number; total: number; done: number; of: number }
  | { kind: 'part'; namespace: string; barrierIndex: number; index: number; bytes: number; sha256: string }

/** What to snapshot and where. */
export interface SnapshotRequest {
  /** The gateway URL of any node. */
  node: string
  out: string
  /** Only these namespaces (default: every one in the catalog). */
  namespaces?: string[]
  key?: Uint8Array
  /** Bearer token for a node with auth on (an admin token). */
  token?: string
  signal?: AbortSignal
  onProgress?: (e: SnapshotEvent) => void
}

/** Takes a snapshot of a running cluster into an archive at `out`; resolves with its manifest. */
export async function createSnapshot(request: SnapshotRequest): Promise<ArchiveManifest> {
  const { node, signal } = request
  signal?.throwIfAborted()
  const catalog = await adminJson<CatalogAnswer>(node, '/v1/admin/catalog', {
    token: request.token,
    ...(signal ? { signal } : {}),
  })
  const known = new Map(catalog.namespaces.map((n) => [n.name, n]))
  const wanted = request.namespaces?.length ? [...new Set(request.namespaces)] : [...known.keys()].sort()
  const missing = wanted.filter((n) => !known.has(n))
  if (missing.length > 0)
    throw new RangeError(`Cannot snapshot namespace '${missing.join("', '")}': not in the catalog of ${node}`)
  request.onProgress?.({ kind: 'start', namespaces: wanted })
  const writer = await ArchiveWriter.create(request.out, request.key ? { key: request.key } : {})
  try {
    const parts: ArchivePart[] = []
    const archived: ArchivedNamespace[] = []
    for (const [i, name] of wanted.entries()) {
      const got = await snapshotNamespace(request, writer, name, i, wanted.length)
      parts.push(got.part)
      archived.push({
        name,
        replicationFactor: known.get(name)!.replicationFactor,
        barrierIndex: got.barrierIndex,
        index: got.part.index,
        term: got.part.term,
        modules: got.modules,
        part: got.part.name,
      })
    }
    const manifest: ArchiveManifest = {
      format: ARCHIVE_FORMAT_VERSION,
      createdAt: new Date().toISOString(),
      source: { node, peer: catalog.peer, systemLeader: catalog.systemLeader },
      catalog: { nodes: catalog.nodes, namespaces: catalog.namespaces },
      namespaces: archived,
      parts,
    }
    await writer.finish(manifest)
    return manifest
  } catch (e) {
    await writer.abort()
    throw e
  }
}

async function snapshotNamespace(
  request: SnapshotRequest,
  writer: ArchiveWriter,
  name: string,
  done: number,
  of: number,
): Promise<{ part: ArchivePart; barrierIndex: number; modules: CopyMeta['modules'] }> {
  const { node, signal } = request
  const ns = encodeURIComponent(name)
  const init = { token: request.token, ...(signal ? { signal } : {}) }
  const barrier = await adminJson<{ index: number }>(node, `/v1/admin/snapshot/barrier?namespace=${ns}`, {
    method: 'POST',
    ...init,
  })
  const res = await adminRequest(node, `/v1/admin/snapshot/namespace/${ns}?minIndex=${barrier.index}`, init)
  if (!res.body) throw new Error(`Node at ${node} sent no body for namespace '${name}'`)
  const body = (res.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
  const { meta, rest } = await readCopyMeta(body)
  if (meta.namespace !== name || meta.index < barrier.index)
    throw new Error(
      `Node at ${node} sent a copy of '${meta.namespace}' at ${meta.index} for '${name}' at ${barrier.index} or later`,
    )
  const part: ArchivePart = {
    name: partName(name),
    namespace: name,
    index: meta.index,
    term: meta.term,
    bytes: meta.bytes,
    sha256: meta.sha256,
  }
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (rest.byteLength > 0) yield rest
    for (let r = await body.next(); !r.done; r = await body.next()) yield r.value
  }
  await writer.addPart(part, chunks(), {
    ...init,
    onProgress: (p) =>
      request.onProgress?.({ kind: 'bytes', namespace: name, bytes: p.bytes, total: p.total, done, of }),
  })
  request.onProgress?.({
    kind: 'part',
    namespace: name,
    barrierIndex: barrier.index,
    index: meta.index,
    bytes: meta.bytes,
    sha256: meta.sha256,
  })
  return { part, barrierIndex: barrier.index, modules: meta.modules }
}

/** Where a command writes, and how it reports bad usage (the CLI's usage error: exit 2). */
export interface CommandIo {
  out: NodeJS.WriteStream
  err: NodeJS.WriteStream
  usage: (message: string) => Error
}

/** `actormesh snapshot …` and `actormesh snapshot verify …`. */
export async function runSnapshotCommand(argv: string[], io: CommandIo): Promise<void> {
  if (argv[0] === 'verify') return runVerify(argv.slice(1), io)
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      node: { type: 'string' },
      out: { type: 'string' },
      namespace: { type: 'string', multiple: true },
      'key-file': { type: 'string' },
      token: { type: 'string' },
    },
    strict: true,
    allowPositionals: true,
  })
  if (positionals.length > 0) throw io.usage(`Unexpected argument '${positionals[0]}' for snapshot`)
  if (!values.node || !values.out) throw io.usage('snapshot needs --node URL and --out FILE')
  const node = nodeUrl(values.node, io.usage)
  const key = values['key-file'] ? await loadArchiveKey(values['key-file']) : undefined
  const view = new ProgressView(io.err)
  const started = performance.now()
  const manifest = await createSnapshot({
    node,
    out: values.out,
    ...(values.token ? { token: values.token } : {}),
    ...(values.namespace ? { namespaces: values.namespace } : {}),
    ...(key ? { key } : {}),
    onProgress: (e) => {
      if (e.kind === 'start') view.line(`snapshot: ${e.namespaces.length} namespaces from ${node}`)
      else if (e.kind === 'bytes')
        view.bar(
          (e.done + e.bytes / e.total) / e.of,
          `${e.done + 1}/${e.of} ${e.namespace} ${mb(e.bytes)} of ${mb(e.total)}`,
        )
      else
        view.line(
          `snapshot: namespace '${e.namespace}' at index ${e.index} (barrier ${e.barrierIndex}), ${mb(e.bytes)}, sha256 ${e.sha256.slice(0, 16)}…`,
        )
    },
  })
  view.end()
  const bytes = manifest.parts.reduce((a, p) => a + p.bytes, 0)
  const s = (performance.now() - started) / 1000
  io.out.write(
    `Wrote ${values.out}: ${manifest.namespaces.length} namespaces, ${mb(bytes)} of state${key ? ', encrypted' : ''}, in ${s.toFixed(1)} s\n`,
  )
}

async function runVerify(argv: string[], io: CommandIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { 'key-file': { type: 'string' } },
    strict: true,
    allowPositionals: true,
  })
  if (positionals.length !== 1) throw io.usage('snapshot verify needs exactly one FILE')
  const file = positionals[0]!
  const key = values['key-file'] ? await loadArchiveKey(values['key-file']) : undefined
  const view = new ProgressView(io.err)
  const manifest = await verifyArchive(file, {
    ...(key ? { key } : {}),
    onProgress: (p) => view.bar(p.bytes / Math.max(1, p.total), `verifying ${mb(p.bytes)} of ${mb(p.total)}`),
  })
  view.end()
  io.out.write(describeManifest(file, manifest, key !== undefined))
}

/** What `snapshot verify` prints: the archive and one line per namespace. */
export function describeManifest(file: string, m: ArchiveManifest, encrypted: boolean): string {
  const lines = [
    `${file}: OK — format ${m.format}${encrypted ? ', encrypted' : ''}, created ${m.createdAt} from ${m.source.node} (${m.source.peer})`,
    `${m.namespaces.length} namespaces, ${mb(m.parts.reduce((a, p) => a + p.bytes, 0))}:`,
  ]
  for (const ns of m.namespaces) {
    const part = m.parts.find((p) => p.name === ns.part)!
    const mod = ns.modules[ns.modules.length - 1]
    lines.push(
      `  ${ns.name}  index ${ns.index} term ${ns.term} (barrier ${ns.barrierIndex})  rf ${ns.replicationFactor}  ${mb(part.bytes)}  module ${mod ? `v${mod.version} ${mod.hash.slice(0, 12)}…` : 'none'}  sha256 ${part.sha256.slice(0, 16)}…`,
    )
  }
  return `${lines.join('\n')}\n`
}
