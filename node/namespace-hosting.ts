/**
 * The namespace replicas one node hosts, kept in line with the catalog: a namespace the catalog
 * places here is opened (its LibSQL store, state machine and Raft group); one the catalog no longer
 * has — deleted, or deleted and created again under the same name (another `createdIndex`) — is
 * removed with its Raft group, its log and its files.
 *
 * Each replica's files carry the `createdIndex` of the namespace they were made for, in
 * `ns/<name>.db.created`, so that a node that was down while the namespace was deleted and created
 * again drops the old replica (its files and its Raft log) instead of running it as the new one.
 */
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { Logger } from 'pino'
import type { MultiRaft } from '../consensus/index.js'
import { type NamespaceStore, openNamespaceStore } from '../storage/index.js'
import type { CatalogNamespace } from './catalog.js'
import { type NamespaceHooks, NamespaceStateMachine } from './namespace-group.js'
import type { NamespaceSnapshots } from './namespace-snapshot.js'

/** What hosting needs from the node. */
export interface NamespaceHostingDeps {
  self: string
  dataDir: string
  driver: MultiRaft
  snapshots: NamespaceSnapshots
  log: Logger
  /** Told after every applied batch of a hosted namespace. */
  hooks?: NamespaceHooks
  /** A replica is hosted here (its store is open, its group created). */
  onHosted?: (name: string, machine: NamespaceStateMachine) => void | Promise<void>
  /** A deleted namespace stops being hosted here, before its group and store go. */
  onUnhosted?: (name: string) => void
}

/** The replicas hosted here, by namespace name (their stores stay open while hosted). */
export class NamespaceHosting {
  private readonly machines = new Map<string, NamespaceStateMachine>()
  /** The catalog's `createdIndex` of each hosted namespace: another one means created again. */
  private readonly createdIndex = new Map<string, number>()
  /** Namespaces being opened or removed (one change at a time per name). */
  private readonly busy = new Set<string>()

  constructor(private readonly deps: NamespaceHostingDeps) {}

  /**
   * The replica of `name` if it was hosted for the catalog's `createdIndex`: a replica of a namespace
   * the catalog has deleted, or deleted and created again, serves nothing while it waits for the
   * next `reconcile` to remove it (calls on it would be acknowledged and then lost with it).
   */
  current(name: string, createdIndex: number | undefined): NamespaceStateMachine | undefined {
    return createdIndex !== undefined && this.createdIndex.get(name) === createdIndex
      ? this.machines.get(name)
      : undefined
  }

  names(): string[] {
    return [...this.machines.keys()]
  }

  /**
   * Hosts every namespace of `catalog` placed here that is not hosted yet, and removes every hosted
   * one that `catalog` no longer has or has under another `createdIndex`. Work runs in the
   * background; a name already being opened or removed is left for the next round.
   */
  reconcile(catalog: ReadonlyMap<string, CatalogNamespace>): void {
    for (const name of this.machines.keys()) {
      const ns = catalog.get(name)
      if ((ns && ns.createdIndex === this.createdIndex.get(name)) || this.busy.has(name)) continue
      this.busy.add(name)
      void this.unhost(name).finally(() => this.busy.delete(name))
    }
    const self = this.deps.self
    for (const ns of catalog.values()) {
      const mine = ns.voters.includes(self) || ns.learners.includes(self)
      if (!mine || this.machines.has(ns.name) || this.busy.has(ns.name)) continue
      this.busy.add(ns.name)
      void this.host(ns).finally(() => this.busy.delete(ns.name))
    }
  }

  /** Closes every hosted store (the driver is closed by the node first). */
  async closeAll(): Promise<void> {
    for (const machine of this.machines.values()) await machine.store.close()
    this.machines.clear()
  }

  private async host(ns: CatalogNamespace): Promise<void> {
    const { driver, log } = this.deps
    let store: NamespaceStore | undefined
    try {
      const dbPath = join(this.deps.dataDir, 'ns', `${ns.name}.db`)
      const marker = `${dbPath}.created`
      const recorded = await readCreatedIndex(marker, log)
      if (recorded !== undefined && recorded !== ns.createdIndex) {
        log.warn(
          { ns: ns.name, recorded, createdIndex: ns.createdIndex },
          'replica files belong to a deleted namespace of the same name; removing them and its Raft log',
        )
        await driver.dropLog(ns.name)
        await removeNamespaceFiles(dbPath)
      }
      store = await openNamespaceStore({ dataDir: this.deps.dataDir, name: ns.name, logger: log })
      if (recorded !== ns.createdIndex) await writeCreatedIndex(marker, ns.createdIndex)
      const applied = store.applied().index
      const machine = await NamespaceStateMachine.open(
        ns.name,
        store,
        this.deps.hooks,
        undefined,
        this.deps.snapshots,
      )
      driver.createGroup(ns.name, {
        bootstrap: { voters: ns.voters, learners: ns.learners },
        ...(applied > 0 ? { applied } : {}),
        stateMachine: machine,
      })
      this.machines.set(ns.name, machine)
      this.createdIndex.set(ns.name, ns.createdIndex)
      store = undefined
      await this.deps.onHosted?.(ns.name, machine)
      log.info({ ns: ns.name }, 'hosting namespace replica')
    } catch (e) {
      await store?.close().catch(() => {})
      log.error({ ns: ns.name, err: String(e) }, 'cannot host namespace replica; will retry')
    }
  }

  /** Stops hosting a deleted namespace: its Raft group (and log) goes, then its store and files. */
  private async unhost(name: string): Promise<void> {
    const machine = this.machines.get(name)
    if (!machine) return
    this.machines.delete(name)
    this.createdIndex.delete(name)
    try {
      this.deps.onUnhosted?.(name)
      if (this.deps.driver.groups().includes(name)) await this.deps.driver.removeGroup(name)
      await machine.store.close()
      await removeNamespaceFiles(machine.store.path)
      this.deps.log.info({ ns: name }, 'namespace deleted: replica, log and files removed')
    } catch (e) {
      this.deps.log.error(
        { ns: name, err: String(e) },
        'cannot remove a deleted namespace replica completely',
      )
    }
  }
}

/**
 * The `createdIndex` a replica's marker file names; undefined when there is none (a replica made
 * before markers existed, or a restored one: adopted as it is) or it cannot be read (logged, and
 * adopted too: dropping a replica that may hold acknowledged entries is worse than keeping one).
 */
async function readCreatedIndex(marker: string, log: Logger): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(marker, 'utf8')
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined
    throw e
  }
  const n = Number(text.trim())
  if (Number.isSafeInteger(n) && n > 0 && /^\d+$/.test(text.trim())) return n
  log.warn({ marker, text: text.slice(0, 64) }, 'unreadable replica marker; keeping the replica')
  return undefined
}

/** Writes the marker through a temp file and a rename, so that it is whole or absent. */
async function writeCreatedIndex(marker: string, createdIndex: number): Promise<void> {
  const tmp = `${marker}.tmp`
  await writeFile(tmp, `${createdIndex}\n`, { flush: true })
  await rename(tmp, marker)
}

/**
 * Removes a namespace's database and every file beside it that belongs to it (`-wal`, `-shm`,
 * `-journal`, its `.created` marker, snapshot and staging temps): all are named `<name>.db`
 * followed by `-` or `.` (namespace names have no dot, so no other namespace's file matches).
 */
async function removeNamespaceFiles(path: string): Promise<void> {
  const dir = dirname(path)
  const file = basename(path)
  for (const name of await readdir(dir)) {
    if (name === file || name.startsWith(`${file}-`) || name.startsWith(`${file}.`))
      await rm(join(dir, name), { force: true, recursive: true })
  }
}
