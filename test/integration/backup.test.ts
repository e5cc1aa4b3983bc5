/**
 * Snapshot and restore of whole clusters, with real node processes and the real CLI:
 * three nodes hold BACKUP_NAMESPACES namespaces × BACKUP_ACTORS list-append actors under
 * concurrent writes; `actormesh snapshot` archives them; the archive is restored into a new
 * one-node cluster and a new five-node cluster, and one namespace of the source is rolled back.
 * Bad archives are refused and leave their targets untouched.
 *
 * The default is the issue's size, 20 namespaces × 1,000 actors (about 3 minutes on two shared
 * cores); BACKUP_NAMESPACES=3 BACKUP_ACTORS=50 makes a one-minute run while working on it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '@libsql/client'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { readArchive } from '../../node/backup/archive.js'
import { restoreToDataDir } from '../../node/backup/bootstrap.js'
import { loadArchiveKey } from '../../node/backup/crypto.js'
import type { ArchiveManifest } from '../../node/backup/manifest.js'
import { rollbackNamespace } from '../../node/backup/restore-command.js'
import { exampleModule } from '../actors/examples.js'
import { json, manifestOf, partOf, RECORD, writeRawArchive } from '../backup/helpers.js'
import { seeded } from '../storage/helpers.js'
import { callOnce, createNamespace, deploy } from './calls.js'
import { type ClusterNode, getJson, type NamespaceView, ProcessCluster, waitFor } from './cluster.js'

const SEED = Number(process.env.SEED ?? 8_808)
const NAMESPACES = Number(process.env.BACKUP_NAMESPACES ?? 20)
const ACTORS = Number(process.env.BACKUP_ACTORS ?? 1000)
const WRITERS = 8

const root = join(import.meta.dirname, '..', '..')
const nodeBin = join(root, 'node_modules', '.bin', 'node')
const cliPath = join(root, 'bin', 'actormesh.js')

const nsName = (i: number) => `bk${i}`
const actorName = (i: number) => `a${i}`
const names = Array.from({ length: NAMESPACES }, (_, i) => nsName(i))

let dir = ''
let source: ProcessCluster
const extra: ProcessCluster[] = []
const loose: ChildProcess[] = []
let archive = ''
let manifest: ArchiveManifest
/** Items acknowledged before the snapshot command started, per `ns/actor`. */
const ackedBefore = new Map<string, Set<string>>()
/** Every namespace's lists as archived (read from the archive's databases). */
const archived = new Map<string, Map<string, string[]>>()
const archivedDigest = new Map<string, string>()

/** Runs the CLI to completion; resolves with its exit code and output. */
function cli(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(nodeBin, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    proc.stderr!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`actormesh ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${out}`))
    }, timeoutMs)
    proc.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

/** Every kv row of a namespace database (read through a second connection; WAL allows it). */
async function rows(path: string): Promise<Array<[string, string, Buffer]>> {
  const client = createClient({ url: `file:${path}` })
  try {
    const rs = await client.execute(
      'SELECT CAST(actor AS BLOB), CAST(key AS BLOB), value FROM kv ORDER BY 1, 2',
    )
    return rs.rows.map((r) => [
      Buffer.from(r[0] as ArrayBuffer).toString('utf8'),
      Buffer.from(r[1] as ArrayBuffer).toString('utf8'),
      Buffer.from(r[2] as ArrayBuffer),
    ])
  } finally {
    client.close()
  }
}

/** SHA-256 of the rows (with or without the namespace's own bookkeeping actor, `\0ns`). */
async function digest(path: string, withMeta = true): Promise<string> {
  const h = createHash('sha256')
  for (const [actor, key, value] of await rows(path)) {
    if (!withMeta && actor.startsWith('\u0000')) continue
    h.update(`${actor}\u0000${key}\u0000`).update(value).update('\u0000')
  }
  return h.digest('hex')
}

/** The list-append lists of a namespace database, by actor. */
async function lists(path: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>()
  for (const [actor, key, value] of await rows(path)) {
    if (!key.startsWith('item/')) continue
    out.set(actor, [...(out.get(actor) ?? []), value.toString('utf8')])
  }
  return out
}

async function namespacesOf(node: ClusterNode): Promise<NamespaceView[]> {
  return ((await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }).namespaces
}

/** Runs `jobs` with at most `n` at a time. */
async function pool<T>(items: T[], n: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await job(items[next++]!)
    }),
  )
}

/** Appends `item` to an actor through `node`, retrying retryable answers with the item as idempotency key. */
async function append(node: ClusterNode, ns: string, actor: string, item: string): Promise<void> {
  await waitFor(
    async () => {
      const a = await callOnce(node, ns, actor, 'append', item, { key: item }).catch(() => undefined)
      if (a && a.status !== 200 && a.status !== 503 && a.status !== 504)
        throw new Error(`append ${item}: ${a.status} ${a.body}`)
      return a?.status === 200
    },
    () => `append ${item} to ${ns}/${actor}`,
    60_000,
  )
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'am-backup-'))
  source = new ProcessCluster()
  await source.start(3)
  const first = source.nodes[0]!
  const module = await exampleModule('list-append')
  await Promise.all(
    names.map(async (ns) => {
      await createNamespace(first, ns, 3)
      await deploy(first, ns, module)
    }),
  )
  // Every actor gets a first item, so every one exists in the archive.
  const seedItems = names.flatMap((ns) =>
    Array.from({ length: ACTORS }, (_, a) => [ns, actorName(a)] as const),
  )
  let via = 0
  await pool(seedItems, 64, async ([ns, actor]) =>
    append(source.nodes[via++ % 3]!, ns, actor, `${ns}-${actor}-first`),
  )
  // Concurrent writers through all three nodes while the snapshot runs.
  const rnd = seeded(SEED)
  const picks = Array.from({ length: 100_000 }, () => [rnd(NAMESPACES), rnd(ACTORS)] as const)
  let stop = false
  let snapStarted = Number.POSITIVE_INFINITY
  let acked = 0
  const writer = async (w: number) => {
    for (let n = 0; !stop; n++) {
      const [i, a] = picks[(w * 7919 + n * WRITERS) % picks.length]!
      const ns = nsName(i)
      const actor = actorName(a)
      const item = `w${w}-${n}`
      await append(source.nodes[(w + n) % 3]!, ns, actor, item)
      acked++
      if (Date.now() < snapStarted) {
        const k = `${ns}/${actor}`
        ackedBefore.set(k, (ackedBefore.get(k) ?? new Set()).add(item))
      }
    }
  }
  for (const ns of names)
    for (let a = 0; a < ACTORS; a++)
      ackedBefore.set(`${ns}/${actorName(a)}`, new Set([`${ns}-${actorName(a)}-first`]))
  const writers = Array.from({ length: WRITERS }, (_, w) => writer(w))
  await waitFor(
    () => acked >= 100,
    () => `100 writes under way (have ${acked})`,
    60_000,
  )
  archive = join(dir, 'cluster.amsnap')
  snapStarted = Date.now()
  const snap = await cli(['snapshot', '--node', first.url, '--out', archive])
  expect(snap.code, snap.out).toBe(0)
  const atSnapshot = acked
  await waitFor(
    () => acked >= atSnapshot + 50,
    () => 'writes to go on after the snapshot',
    60_000,
  )
  stop = true
  await Promise.all(writers)
  // The archive's databases, extracted for comparisons.
  for await (const item of readArchive(archive)) {
    if (item.kind === 'manifest') {
      manifest = item.manifest
      continue
    }
    const path = join(dir, `${item.part.namespace}.archived.db`)
    const parts: Buffer[] = []
    for await (const c of item.chunks) parts.push(Buffer.from(c))
    await writeFile(path, Buffer.concat(parts))
    archived.set(item.part.namespace, await lists(path))
    archivedDigest.set(item.part.namespace, await digest(path))
  }
}, 900_000)

afterAll(async () => {
  for (const p of loose) if (p.exitCode === null) p.kill('SIGKILL')
  for (const c of extra) await c.stop()
  await source?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe(`snapshot and restore (${NAMESPACES} namespaces × ${ACTORS} actors, SEED=${SEED})`, () => {
  it('archives every write acknowledged before the barrier, each namespace as the source had it at its index', async () => {
    expect(manifest.namespaces.map((n) => n.name)).toEqual([...names].sort())
    for (const ns of manifest.namespaces) {
      expect(ns.index).toBeGreaterThanOrEqual(ns.barrierIndex)
      expect(ns.modules).toHaveLength(1)
      expect(ns.replicationFactor).toBe(3)
    }
    // The source's final lists: every archived list must be a prefix of its actor's final list
    // (appends are ordered, so the state at the archived index is exactly such a prefix).
    const pairs = names.flatMap((ns) => Array.from({ length: ACTORS }, (_, a) => [ns, actorName(a)] as const))
    let via = 0
    // Reads through all three nodes, 32 at a time (20,000 one after another took minutes).
    await pool(pairs, 32, async ([ns, actor]) => {
      const got = archived.get(ns)!.get(actor) ?? []
      const have = new Set(got)
      for (const item of ackedBefore.get(`${ns}/${actor}`)!)
        expect(have.has(item), `${ns}/${actor} lacks ${item}`).toBe(true)
      const node = source.nodes[via++ % 3]!
      const final = await waitFor(
        async () => {
          const r = await callOnce(node, ns, actor, 'read')
          return r.status === 200 ? (JSON.parse(r.body) as string[]) : undefined
        },
        () => `read ${ns}/${actor}`,
      )
      expect(final.slice(0, got.length), `${ns}/${actor}`).toEqual(got)
    })
  }, 300_000)

  it('restores into a new one-node cluster that serves exactly the archived state', async () => {
    const data = join(dir, 'one')
    const proc = spawn(
      nodeBin,
      [
        cliPath,
        'restore',
        '--from',
        archive,
        '--data',
        data,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--http',
        '127.0.0.1:0',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    loose.push(proc)
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    proc.stderr!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    onTestFailed(() => console.error(out))
    const url = await waitFor(
      () => /health:\s+curl (\S+)\/healthz/.exec(out)?.[1],
      () => `the restored node to start:\n${out}`,
      60_000,
      () => proc.exitCode !== null,
    )
    const node = { url } as ClusterNode
    const peer = ((await getJson(`${url}/v1/members`)) as { self: { peer: string } }).self.peer
    expect(source.nodes.map((n) => n.peer)).not.toContain(peer)
    for (const ns of names) {
      expect(await digest(join(data, 'ns', `${ns}.db`)), ns).toBe(archivedDigest.get(ns))
    }
    const views = await namespacesOf(node)
    for (const ns of names) {
      const v = views.find((x) => x.name === ns)!
      expect(v.voters).toEqual([peer])
    }
    // It serves the archived lists and takes new writes.
    const ns = names[0]!
    const r = await waitFor(
      async () => {
        const a = await callOnce(node, ns, actorName(0), 'read')
        return a.status === 200 ? (JSON.parse(a.body) as string[]) : undefined
      },
      () => 'a read on the restored node',
    )
    expect(r).toEqual(archived.get(ns)!.get(actorName(0)))
    await append(node, ns, actorName(0), 'after-restore')
    proc.kill('SIGTERM')
    await new Promise((res) => proc.once('exit', res))
  }, 300_000)

  it('restores into a new five-node cluster: replicas are added up to each replication factor, all equal to the archive', async () => {
    const data = join(dir, 'five')
    const restored = await cli(['restore', '--from', archive, '--data', join(data, 'n0'), '--no-start'])
    expect(restored.code, restored.out).toBe(0)
    const cluster = new ProcessCluster()
    extra.push(cluster)
    onTestFailed(() => {
      for (const n of cluster.nodes)
        console.error(`--- ${n.peer} (${n.dataDir})\n${n.output().slice(-60000)}`)
    })
    const t0 = Date.now()
    const logArgs = process.env.BACKUP_LOG ? ['--log-level', process.env.BACKUP_LOG] : []
    const first = await cluster.startNode(join(data, 'n0'), [], logArgs)
    await Promise.all([1, 2, 3, 4].map((i) => cluster.startNode(join(data, `n${i}`), [first.addr], logArgs)))
    const up = Date.now() - t0
    const timeline: string[] = []
    onTestFailed(() => console.error(`replica placement over time:\n${timeline.join('\n')}`))
    await waitFor(
      async () => {
        const views = await namespacesOf(first)
        const status = (await getJson(`${first.url}/v1/status`)) as { system: { voters: string[] } }
        const view = `${status.system.voters.length} sys voters; ${views.map((v) => `${v.name}:${v.voters.length}v${v.learners.length}l`).join(' ')}`
        if (!timeline[timeline.length - 1]?.endsWith(view)) timeline.push(`${Date.now() - t0} ms: ${view}`)
        return names.every((ns) => views.find((v) => v.name === ns)?.voters.length === 3)
      },
      () => 'every namespace to reach 3 voters',
      180_000,
    )
    console.log(
      `backup: five-node restore: nodes up in ${up} ms, every namespace at 3 voters after ${Date.now() - t0} ms`,
    )
    for (const ns of names) {
      const v = (await namespacesOf(first)).find((x) => x.name === ns)!
      const hosts = cluster.nodes.filter((n) => v.voters.includes(n.peer))
      expect(hosts).toHaveLength(3)
      await waitFor(
        async () => {
          for (const h of hosts)
            if ((await digest(join(h.dataDir, 'ns', `${ns}.db`))) !== archivedDigest.get(ns)) return false
          return true
        },
        () => `every replica of ${ns} to hold the archived state`,
        60_000,
      )
    }
    await cluster.stop()
  }, 300_000)

  it('refuses bad archives with a clear message and leaves the target untouched', async () => {
    const full = await readFile(archive)
    const bad = async (name: string, bytes: Uint8Array) => {
      const p = join(dir, name)
      await writeFile(p, bytes)
      return p
    }
    const flipped = Buffer.from(full)
    flipped[Math.floor(full.byteLength / 2)]! ^= 0x10
    const versioned = Buffer.from(full)
    versioned.writeUInt16BE(7, 8)
    const escaping = join(dir, 'escape.amsnap')
    const junk = Buffer.from('x')
    const part = { ...partOf('bk0', junk), name: '../../evil.db' }
    await writeRawArchive(escaping, [
      [RECORD.Part, json(part)],
      [RECORD.Data, junk],
      [RECORD.Manifest, json(manifestOf([part]))],
    ])
    const key = join(dir, 'backup.key')
    await writeFile(key, `${createHash('sha256').update('k1').digest('hex')}\n`)
    const wrongKey = join(dir, 'wrong.key')
    await writeFile(wrongKey, `${createHash('sha256').update('k2').digest('hex')}\n`)
    const encrypted = join(dir, 'enc.amsnap')
    const enc = await cli([
      'snapshot',
      '--node',
      source.nodes[1]!.url,
      '--out',
      encrypted,
      '--namespace',
      names[1]!,
      '--key-file',
      key,
    ])
    expect(enc.code, enc.out).toBe(0)
    const wrong = await loadArchiveKey(wrongKey)
    const cases: Array<[string, Uint8Array | undefined, RegExp]> = [
      [
        await bad('truncated.amsnap', full.subarray(0, full.byteLength - 100)),
        undefined,
        /truncated|cut short/,
      ],
      [await bad('flipped.amsnap', flipped), undefined, /SHA-256|does not match|disagrees/],
      [await bad('version.amsnap', versioned), undefined, /format version 7 is not supported/],
      [escaping, undefined, /could escape the target directory/],
      [encrypted, wrong, /not the one it was written with/],
      [encrypted, undefined, /encrypted; give its key file/],
    ]
    const target = join(dir, 'untouched')
    const ns1 = names[1]!
    const holder = source.nodes[0]!
    const before = await digest(join(holder.dataDir, 'ns', `${ns1}.db`), false)
    // What the CLI runs, in-process (spawning the CLI costs seconds each on a loaded machine) ...
    for (const [file, key, message] of cases) {
      await expect(restoreToDataDir(file, target, key ? { key } : {}), file).rejects.toThrow(message)
      await expect(stat(target)).rejects.toThrow()
      await expect(rollbackNamespace(file, holder.url, ns1, key), file).rejects.toThrow(message)
    }
    // ... and the CLI itself once for each kind of target: exit 1 and the message.
    const flippedFile = cases[1]![0]
    const restoreDir = await cli(['restore', '--from', flippedFile, '--data', target, '--no-start'])
    expect(restoreDir.code, restoreDir.out).toBe(1)
    expect(restoreDir.out).toMatch(/does not match its SHA-256/)
    const rollback = await cli([
      'restore',
      '--from',
      encrypted,
      '--node',
      holder.url,
      '--namespace',
      ns1,
      '--key-file',
      wrongKey,
    ])
    expect(rollback.code, rollback.out).toBe(1)
    expect(rollback.out).toMatch(/not the one it was written with/)
    await expect(stat(target)).rejects.toThrow()
    expect((await readdir(dir)).filter((f) => f.includes('.restore-'))).toEqual([])
    expect(await digest(join(holder.dataDir, 'ns', `${ns1}.db`), false)).toBe(before)
    // The encrypted archive itself is fine with its key.
    const ok = await cli(['snapshot', 'verify', encrypted, '--key-file', key])
    expect(ok.code, ok.out).toBe(0)
  }, 300_000)

  it('rolls one namespace of the running source back through Raft, on every replica, and keeps serving', async () => {
    const ns = names[0]!
    const other = names[1]!
    const otherBefore = await digest(join(source.nodes[0]!.dataDir, 'ns', `${other}.db`), false)
    const archivedUser = await digest(join(dir, `${ns}.archived.db`), false)
    expect(await digest(join(source.nodes[0]!.dataDir, 'ns', `${ns}.db`), false)).not.toBe(archivedUser)
    const started = Date.now()
    const r = await cli(['restore', '--from', archive, '--node', source.nodes[2]!.url, '--namespace', ns])
    expect(r.code, r.out).toBe(0)
    console.log(`rollback: the command took ${Date.now() - started} ms: ${r.out.trim()}`)
    await waitFor(
      async () => {
        for (const n of source.nodes)
          if ((await digest(join(n.dataDir, 'ns', `${ns}.db`), false)) !== archivedUser) return false
        return true
      },
      () => `every replica of ${ns} to hold the archived state`,
      60_000,
    )
    expect(await digest(join(source.nodes[0]!.dataDir, 'ns', `${other}.db`), false)).toBe(otherBefore)
    await append(source.nodes[1]!, ns, actorName(0), 'after-rollback')
    const read = await callOnce(source.nodes[0]!, ns, actorName(0), 'read')
    expect(JSON.parse(read.body)).toEqual([...archived.get(ns)!.get(actorName(0))!, 'after-rollback'])
  }, 120_000)
})
