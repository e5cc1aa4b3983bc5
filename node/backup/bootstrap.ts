/**
 * Restoring an archive into a new data directory: a new one-node cluster (a new peer id) whose
 * namespaces hold exactly the archived state and modules, and that other nodes join with `--seed`.
 *
 * Everything is written into a temp directory beside the target and renamed into place at the end,
 * so a bad archive leaves the target as it was. The directory then holds, as a node would after a
 * clean stop:
 *  - `peer.key`: a fresh identity;
 *  - `ns/<name>.db`: each archived database as it was archived (applied point and entry chain
 *    included);
 *  - `raft.db`: for each namespace a Raft snapshot at the archived index and term whose membership
 *    is this node alone, with the usual marker (maker: this node) — so the group resumes exactly at
 *    the database's applied index and a replica added later pulls the database from this node;
 *    and a `_system` snapshot holding the catalog: this node, and each namespace with its archived
 *    replication factor, this node as its only voter, and its module hash.
 * On start the node restarts `_system` from raft.db (a one-voter group elects itself), hosts every
 * namespace, and placement's repair adds replicas up to the replication factor as nodes join.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { GroupWrite } from '../../consensus/index.js'
import { inspectNamespaceFile, openRaftLogStore } from '../../storage/index.js'
import { Catalog, SYSTEM_GROUP } from '../catalog.js'
import { encodeSnapshotMarker } from '../namespace-snapshot.js'
import { loadOrCreatePeerKey } from '../p2p/peer-key.js'
import { type ArchiveReadOptions, readArchive } from './archive.js'
import { ArchiveCorruptError, ArchiveMemberError, RestoreTargetError } from './errors.js'
import type { ArchiveManifest } from './manifest.js'

/** What a restore into a data directory made. */
export interface RestoredCluster {
  dataDir: string
  /** The new node's peer id. */
  peer: string
  manifest: ArchiveManifest
}

/** Progress of a restore: bytes of the archive read (of its size), and each namespace as it is checked. */
export type RestoreEvent =
  | { kind: 'read'; bytes: number; total: number }
  | { kind: 'namespace'; namespace: string; index: number; bytes: number }

/**
 * Restores the archive at `from` into `dataDir`, which must not exist or be empty. Nothing is
 * written there unless the whole archive checks out (every hash, the manifest, every database).
 */
export async function restoreToDataDir(
  from: string,
  dataDir: string,
  options: Omit<ArchiveReadOptions, 'onProgress'> & { onProgress?: (e: RestoreEvent) => void } = {},
): Promise<RestoredCluster> {
  options.signal?.throwIfAborted()
  const target = resolve(dataDir)
  await checkTarget(target)
  const tmp = join(dirname(target), `.${basename(target)}.restore-${randomBytes(6).toString('hex')}`)
  await mkdir(join(tmp, 'ns'), { recursive: true })
  try {
    const manifest = await extract(from, tmp, options)
    for (const ns of manifest.namespaces) {
      const file = join(tmp, ns.part)
      const info = await inspectNamespaceFile(file)
      const modules = JSON.stringify(info.modules)
      if (
        info.namespace !== ns.name ||
        info.index !== ns.index ||
        info.term !== ns.term ||
        modules !== JSON.stringify(ns.modules)
      )
        throw new ArchiveCorruptError(
          `Cannot restore '${from}': the database of namespace '${ns.name}' does not hold what the manifest says`,
        )
      options.onProgress?.({ kind: 'namespace', namespace: ns.name, index: ns.index, bytes: info.stateBytes })
    }
    const peer = peerIdFromPrivateKey(await loadOrCreatePeerKey(tmp)).toString()
    await writeRaftState(tmp, peer, manifest)
    await syncDir(tmp)
    await checkTarget(target)
    await rmdir(target).catch(() => {})
    await rename(tmp, target)
    await syncDir(dirname(target))
    return { dataDir: target, peer, manifest }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
}

async function checkTarget(target: string): Promise<void> {
  const entries = await readdir(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return []
    throw e
  })
  if (entries.length > 0)
    throw new RestoreTargetError(
      `Cannot restore into '${target}': the directory is not empty (a restore creates a new cluster; use an empty directory)`,
    )
}

/** Writes every part under `dir`, each checked by the reader; resolves with the verified manifest. */
async function extract(
  from: string,
  dir: string,
  options: Omit<ArchiveReadOptions, 'onProgress'> & { onProgress?: (e: RestoreEvent) => void },
): Promise<ArchiveManifest> {
  const read = readArchive(from, {
    ...(options.key ? { key: options.key } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (p) => options.onProgress?.({ kind: 'read', ...p }),
  })
  for await (const item of read) {
    if (item.kind === 'manifest') return item.manifest
    const path = resolve(dir, item.part.name)
    // The reader already refuses any name but ns/<namespace>.db; this holds even if that changes.
    if (!path.startsWith(`${resolve(dir)}${sep}`))
      throw new ArchiveMemberError(
        `Cannot restore '${from}': member '${item.part.name}' would leave the target directory`,
      )
    const fh = await open(path, 'wx')
    try {
      for await (const chunk of item.chunks) await fh.write(chunk)
      await fh.sync()
    } finally {
      await fh.close()
    }
  }
  throw new ArchiveCorruptError(`Cannot restore '${from}': it ends without a manifest`)
}

/** raft.db of the new node: a `_system` snapshot with the catalog, one snapshot per namespace. */
async function writeRaftState(dir: string, peer: string, manifest: ArchiveManifest): Promise<void> {
  const conf = { voters: [peer], learners: [] }
  const catalog = new Catalog()
  catalog.nodes.set(peer, { peer, addrs: [], joinedIndex: 1 })
  const archived = new Map(manifest.catalog.namespaces.map((n) => [n.name, n]))
  for (const ns of manifest.namespaces) {
    const last = ns.modules[ns.modules.length - 1]
    catalog.namespaces.set(ns.name, {
      name: ns.name,
      replicationFactor: ns.replicationFactor,
      voters: [peer],
      learners: [],
      moduleHash: last?.hash ?? '',
      moduleVersion: archived.get(ns.name)?.moduleVersion ?? ns.modules.length,
      createdIndex: 1,
    })
  }
  catalog.appliedIndex = 1
  const writes: GroupWrite[] = [
    {
      group: SYSTEM_GROUP,
      entries: [],
      hardState: { term: 1, vote: '', commit: 1 },
      snapshot: { meta: { index: 1, term: 1, conf }, data: catalog.snapshot() },
    },
    // A namespace that never applied an entry needs no snapshot: its group bootstraps as usual.
    ...manifest.namespaces
      .filter((ns) => ns.index > 0)
      .map((ns) => ({
        group: ns.name,
        entries: [],
        hardState: { term: ns.term, vote: '', commit: ns.index },
        snapshot: {
          meta: { index: ns.index, term: ns.term, conf },
          data: encodeSnapshotMarker({ namespace: ns.name, index: ns.index, term: ns.term, maker: peer }),
        },
      })),
  ]
  const store = await openRaftLogStore({ path: join(dir, 'raft.db') })
  try {
    await store.persist(writes)
  } finally {
    await store.close()
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
