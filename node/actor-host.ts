/**
 * The actor host of one node: runs calls of the namespaces this node leads through the actor
 * runtime and makes them durable — write set and broadcasts as one Raft entry, reply released
 * only after that entry is committed and applied (the output gate) — and serves read-only calls
 * with ReadIndex, or from local applied state when the caller accepts stale reads.
 */
import { type KeyObject, randomBytes } from 'node:crypto'
import { Packr } from 'msgpackr'
import type { Logger } from 'pino'
import {
  type ActorLimits,
  type ActorRuntime,
  alarmKey,
  type Capability,
  createActorRuntime,
  decodeAlarm,
  MethodNotFoundError,
  ReadonlyViolationError,
  SizeLimitError,
} from '../actors/index.js'
import { type MultiRaft, ProposalDroppedError, Role } from '../consensus/index.js'
import type { StateReader, StateWrite } from '../storage/index.js'
import { NotAppliedError, NotLeaderError, OutcomeUnknownError } from './errors.js'
import {
  type AppliedEntry,
  encodeNamespaceEntry,
  NAMESPACE_META_ACTOR,
  type NamespaceEntry,
  type NamespaceStateMachine,
} from './namespace-group.js'

const packr = new Packr({ useRecords: false })

/**
 * Reserved key holding an actor's idempotency records (user keys cannot start with `\0`):
 * msgpack `[key, atMs, reply][]`, oldest first, pruned on every keyed write.
 */
const IDEMPOTENCY_KEY = '\u0000idem'
type IdempotencyRecord = [key: string, atMs: number, reply: Uint8Array]

/** Where a module is compiled and checked before its deploy entry is proposed (never called). */
const VALIDATE_NAMESPACE = '\u0000validate'

const emptyReader: StateReader = {
  loadActor: async () => [],
  get: async () => undefined,
  list: async () => ({ entries: [] }),
  actorBytes: async () => 0,
}

export interface ActorHostOptions {
  /** A retried call with the same idempotency key within this window returns the first outcome. */
  idempotencyWindowMs?: number
  /** Idempotency records kept per actor (oldest dropped first, even inside the window). */
  idempotencyKeysMax?: number
  /** Bytes of idempotency records (replies included) kept per actor. */
  idempotencyBytesMax?: number
  /** How often the leader looks for due alarms. */
  alarmIntervalMs?: number
  /** How often idle actors are evicted. */
  evictIntervalMs?: number
  /** Bytes of one module. */
  moduleBytesMax?: number
  /** Ed25519 public keys a deployed module must be signed by (one of them); none: unsigned is fine. */
  deployKeys?: readonly KeyObject[]
  limits?: Partial<ActorLimits>
}

/** One call as the request path carries it. */
export interface CallRequest {
  namespace: string
  actor: string
  method: string
  payload: Uint8Array
  /** Serve as a read: no Raft entry. Methods the module lists as read-only are reads anyway. */
  readonly?: boolean
  /** `stale`: served from this replica's applied state (read-only calls only). */
  consistency?: 'strong' | 'stale'
  idempotencyKey?: string
  /** The caller's W3C `traceparent` (checked, version 00): the call's spans are its children. */
  traceparent?: string
}

export interface CallReply {
  reply: Uint8Array
  /** Peer id of the node that ran the call. */
  servedBy: string
  /** True when the reply is the stored outcome of an earlier call with the same idempotency key. */
  replayed?: boolean
  /** Fuel the run used (absent for a replayed outcome). */
  fuelUsed?: number
}

/** What this node tracks per hosted namespace. */
interface NamespaceState {
  /** Term in which this node's runtime state is the leader's (0: follower mode). */
  term: number
  /** Leadership stint and sequence of the entry chain (see NamespaceStateMachine). */
  epoch: string
  seq: number
  /** The applied index this stint's state was read at. */
  base: number
  becoming?: { term: number; done: Promise<void> }
  /** Latest module version and hash applied here, and the version the runtime runs. */
  module: { version: number; hash: string }
  deployedVersion: number
  /** Actors with an alarm set, and when (every replica keeps it, so a new leader knows them). */
  alarms: Map<string, number>
  firing: Set<string>
  /** Per actor: settles when its latest proposal is applied (rejects if it was not). */
  gates: Map<string, Promise<void>>
  /** Idempotent calls in flight, by `actor \0 key`. */
  keyed: Map<string, Promise<CallReply>>
  /** Per actor: the idempotency records as last proposed in this stint, until applied. */
  records: Map<string, IdempotencyRecord[]>
  /** Per actor: keyed writes compose one at a time, each on the records the previous one wrote. */
  recordLocks: Map<string, Promise<void>>
}

export function checkCallRequest(req: CallRequest): void {
  if (typeof req.actor !== 'string' || req.actor.startsWith('\u0000'))
    throw new TypeError(`Bad actor id '${String(req.actor)}': it must not start with a NUL character`)
  if (req.consistency !== undefined && req.consistency !== 'strong' && req.consistency !== 'stale')
    throw new TypeError(`Bad consistency '${String(req.consistency)}': use 'strong' or 'stale'`)
  const key = req.idempotencyKey
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 128))
    throw new TypeError(`Bad idempotency key '${String(key)}': use 1 to 128 characters`)
}

export class ActorHost {
  readonly runtime: ActorRuntime
  private readonly state = new Map<string, NamespaceState>()
  private readonly idempotencyWindowMs: number
  private readonly idempotencyKeysMax: number
  private readonly idempotencyBytesMax: number
  private readonly moduleBytesMax: number
  private readonly deployKeys: readonly KeyObject[]
  private readonly timers: NodeJS.Timeout[] = []
  private readonly options: ActorHostOptions

  constructor(
    private readonly self: string,
    private readonly driver: MultiRaft,
    private readonly hosted: (namespace: string) => NamespaceStateMachine | undefined,
    private readonly log: Logger,
    options: ActorHostOptions = {},
  ) {
    this.options = options
    this.idempotencyWindowMs = options.idempotencyWindowMs ?? 10 * 60_000
    this.idempotencyKeysMax = options.idempotencyKeysMax ?? 256
    this.idempotencyBytesMax = options.idempotencyBytesMax ?? 256 << 10
    this.moduleBytesMax = options.moduleBytesMax ?? 8 << 20
    this.deployKeys = options.deployKeys ?? []
    this.runtime = createActorRuntime({
      stateOf: (ns) => this.storeOf(ns),
      ...(options.limits ? { limits: options.limits } : {}),
      logger: log.child({ component: 'actors' }),
    })
  }

  start(): void {
    const every = (ms: number, run: () => void) => {
      const t = setInterval(run, ms)
      t.unref()
      this.timers.push(t)
    }
    every(this.options.alarmIntervalMs ?? 100, () => this.fireAlarms())
    every(this.options.evictIntervalMs ?? 5_000, () => this.runtime.evictIdle())
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t)
    this.runtime.close()
  }

  /**
   * A namespace replica is hosted here, or its state was replaced by a snapshot: (re)load its
   * module version and alarm index, and drop resident actors loaded from the old state.
   */
  async onHosted(name: string, machine: NamespaceStateMachine): Promise<void> {
    const s = this.ns(name)
    if (s.term === 0) this.runtime.discardNamespace(name)
    const modules = await machine.store.modules()
    const last = modules[modules.length - 1]
    if (last) s.module = { version: last.version, hash: last.hash }
    s.alarms.clear()
    for (const [actor, value] of await machine.store.actorsWithKey(alarmKey)) {
      s.alarms.set(actor, decodeAlarm(value))
    }
  }

  /**
   * A restore entry replaced the namespace's state (node/backup/rollback.ts): a stint led here was
   * computed on the old state and ends (the next call starts a new one); the module in use, the
   * alarm index and resident actors are reloaded from the restored state.
   */
  async onRestored(name: string, machine: NamespaceStateMachine): Promise<void> {
    const s = this.ns(name)
    s.term = 0
    s.gates.clear()
    s.module = { version: 0, hash: '' }
    s.deployedVersion = 0
    this.runtime.discardNamespace(name)
    await this.onHosted(name, machine)
  }

  /**
   * The namespace was deleted and is no longer hosted here: its stint, alarms, module version and
   * resident actors go, so nothing touches its removed group and a namespace created again under
   * the name starts from nothing.
   */
  onRemoved(name: string): void {
    this.state.delete(name)
    this.runtime.removeNamespace(name)
  }

  /** Applied entries of a hosted namespace (every replica): alarm index, module, follower caches. */
  onApplied(name: string, entries: AppliedEntry[]): void {
    const s = this.ns(name)
    for (const { entry: e } of entries) {
      if (e.module) s.module = { version: e.module.version, hash: e.module.hash }
      for (const w of e.writes) {
        if (w.key === alarmKey) {
          if (w.value) s.alarms.set(w.actor, decodeAlarm(w.value))
          else s.alarms.delete(w.actor)
        }
        // A follower's resident actors serve stale reads: drop the ones that just changed.
        if (s.term === 0 && w.actor !== NAMESPACE_META_ACTOR) this.runtime.discard(name, w.actor)
      }
    }
  }

  /** Runs a call here: this node must lead the namespace unless the call accepts stale reads. */
  async execute(req: CallRequest): Promise<CallReply> {
    checkCallRequest(req)
    const machine = this.hosted(req.namespace)
    if (!machine) throw new NotLeaderError(req.namespace, '')
    if (req.consistency === 'stale' && this.driver.leader(req.namespace) !== this.self) {
      return this.staleRead(req, machine)
    }
    const term = this.leaderTerm(req.namespace)
    await this.becomeLeader(req.namespace, term)
    await this.ensureModule(req.namespace, machine)
    const readonly = req.readonly === true || this.runtime.isReadonly(req.namespace, req.method)
    if (readonly) return this.read(req, req.consistency !== 'stale')
    if (req.idempotencyKey === undefined) return this.write(req, machine)
    const s = this.ns(req.namespace)
    const id = `${req.actor}\u0000${req.idempotencyKey}`
    const inflight = s.keyed.get(id)
    if (inflight) return { ...(await inflight), replayed: true }
    const run = this.keyedWrite(req, machine)
    s.keyed.set(id, run)
    try {
      return await run
    } finally {
      s.keyed.delete(id)
    }
  }

  /**
   * Deploys a module to a namespace this node leads: validated and compiled here first, then
   * replicated as an entry; every replica's runtime switches to it once the entry is applied.
   */
  async deploy(
    namespace: string,
    bytes: Uint8Array,
    options: { capabilities?: Capability[]; signature?: Uint8Array } = {},
  ): Promise<{ namespace: string; version: number; hash: string }> {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new TypeError('Bad module: no bytes')
    if (bytes.length > this.moduleBytesMax) {
      throw new SizeLimitError(
        `Cannot deploy ${bytes.length} bytes to '${namespace}': over moduleBytesMax '${this.moduleBytesMax}'`,
        'moduleBytesMax',
      )
    }
    const machine = this.hosted(namespace)
    if (!machine) throw new NotLeaderError(namespace, '')
    const term = this.leaderTerm(namespace)
    await this.becomeLeader(namespace, term)
    // Validate and compile under a scratch name: the namespace switches only after commit.
    // With deploy keys configured, only a module signed by one of them is accepted.
    const info = await this.runtime.deploy(VALIDATE_NAMESPACE, bytes, {
      ...(options.capabilities ? { capabilities: options.capabilities } : {}),
      ...(this.deployKeys.length > 0 ? { publicKeys: this.deployKeys } : {}),
      ...(options.signature ? { signature: options.signature } : {}),
    })
    const s = this.ns(namespace)
    if (s.module.hash === info.hash) return { namespace, version: s.module.version, hash: info.hash }
    const version = s.module.version + 1
    const entry: NamespaceEntry = {
      epoch: s.epoch,
      seq: ++s.seq,
      base: s.base,
      writes: [],
      module: {
        version,
        hash: info.hash,
        bytes,
        metadata: JSON.stringify({
          ...(options.capabilities ? { capabilities: options.capabilities } : {}),
          ...(options.signature ? { signature: Buffer.from(options.signature).toString('base64') } : {}),
        }),
      },
    }
    await this.propose(namespace, machine, entry)
    return { namespace, version, hash: info.hash }
  }

  /** The module a hosted namespace runs (latest applied here), if any. */
  moduleOf(namespace: string): { version: number; hash: string } | undefined {
    const m = this.state.get(namespace)?.module
    return m && m.version > 0 ? { ...m } : undefined
  }

  /** The state reader the runtime uses for a namespace: the hosted store, looked up on each read. */
  private storeOf(namespace: string): StateReader {
    const store = () => {
      const machine = this.hosted(namespace)
      if (!machine) throw new NotLeaderError(namespace, '')
      return machine.store
    }
    if (namespace === VALIDATE_NAMESPACE) return emptyReader
    return {
      loadActor: (actor, options) => store().loadActor(actor, options),
      get: (actor, key, options) => store().get(actor, key, options),
      list: (actor, prefix, page, options) => store().list(actor, prefix, page, options),
      actorBytes: (actor, options) => store().actorBytes(actor, options),
    }
  }

  private ns(name: string): NamespaceState {
    let s = this.state.get(name)
    if (!s) {
      s = {
        term: 0,
        epoch: '',
        seq: 0,
        base: 0,
        module: { version: 0, hash: '' },
        deployedVersion: 0,
        alarms: new Map(),
        firing: new Set(),
        gates: new Map(),
        keyed: new Map(),
        records: new Map(),
        recordLocks: new Map(),
      }
      this.state.set(name, s)
    }
    return s
  }

  /** The current term if this node leads `namespace`; otherwise throws `NotLeaderError`. */
  private leaderTerm(namespace: string): number {
    const st = this.driver.basicStatus(namespace)
    if (st.role !== Role.Leader) {
      this.becomeFollower(namespace)
      throw new NotLeaderError(namespace, st.lead)
    }
    return st.term
  }

  /**
   * First call of a leadership term: wait until everything committed before it is applied
   * (ReadIndex commits the term's no-op), drop resident state from any earlier term, and start a
   * new entry chain.
   */
  private async becomeLeader(namespace: string, term: number): Promise<void> {
    const s = this.ns(namespace)
    if (s.term === term) return
    if (s.becoming?.term !== term) {
      const done = (async () => {
        await this.driver.readIndex(namespace)
        this.runtime.discardNamespace(namespace)
        s.gates.clear()
        s.records.clear()
        s.epoch = randomBytes(8).toString('hex')
        s.seq = 0
        s.base = this.hosted(namespace)?.store.applied().index ?? 0
        s.term = term
      })()
      s.becoming = { term, done }
      done.then(
        () => {
          if (s.becoming?.done === done) s.becoming = undefined
        },
        () => {
          if (s.becoming?.done === done) s.becoming = undefined
        },
      )
    }
    await s.becoming!.done
    if (s.term !== term) throw new NotLeaderError(namespace, this.driver.leader(namespace))
  }

  /** Leadership is gone: pending writes of the last term are void; resident state goes. */
  private becomeFollower(namespace: string): void {
    const s = this.state.get(namespace)
    if (!s || s.term === 0) return
    s.term = 0
    s.gates.clear()
    s.records.clear()
    this.runtime.discardNamespace(namespace)
  }

  /** Makes the runtime run the namespace's latest applied module. */
  private async ensureModule(namespace: string, machine: NamespaceStateMachine): Promise<void> {
    const s = this.ns(namespace)
    if (s.module.version === 0 || s.deployedVersion === s.module.version) return
    const modules = await machine.store.modules()
    const m = modules[modules.length - 1]
    if (!m) return
    const meta = JSON.parse(m.metadata || '{}') as { capabilities?: Capability[] }
    await this.runtime.deploy(
      namespace,
      m.bytes,
      meta.capabilities ? { capabilities: meta.capabilities } : {},
    )
    s.deployedVersion = m.version
  }

  /** A read on the leader: confirmed by ReadIndex, released after the writes it saw are applied. */
  private async read(req: CallRequest, confirm: boolean): Promise<CallReply> {
    const s = this.ns(req.namespace)
    if (confirm) await this.driver.readIndex(req.namespace)
    const r = await this.runtime.call(req.namespace, req.actor, req.method, req.payload)
    if (r.writes.length > 0 || r.broadcasts.length > 0) {
      this.runtime.discard(req.namespace, req.actor)
      throw new ReadonlyViolationError(
        `Call '${req.method}' on actor '${req.actor}' was sent as read-only but wrote state or broadcast`,
      )
    }
    // It may have seen writes of calls not yet applied: reply only once they are.
    await s.gates.get(req.actor)
    this.runtime.commit(req.namespace, req.actor, r.callId)
    return { reply: r.reply, servedBy: this.self, fuelUsed: r.fuelUsed }
  }

  /** A read from this follower's applied state (may lag the leader). */
  private async staleRead(req: CallRequest, machine: NamespaceStateMachine): Promise<CallReply> {
    this.becomeFollower(req.namespace)
    await this.ensureModule(req.namespace, machine)
    const r = await this.runtime.call(req.namespace, req.actor, req.method, req.payload)
    if (r.writes.length > 0 || r.broadcasts.length > 0) {
      this.runtime.discard(req.namespace, req.actor)
      throw new ReadonlyViolationError(
        `Call '${req.method}' on actor '${req.actor}' asked for a stale read but wrote state or broadcast`,
      )
    }
    this.runtime.commit(req.namespace, req.actor, r.callId)
    return { reply: r.reply, servedBy: this.self, fuelUsed: r.fuelUsed }
  }

  /**
   * A write with an idempotency key: a retry within the window returns the stored reply. The
   * record is written in the same entry as the call's writes, so it survives failover.
   */
  private async keyedWrite(req: CallRequest, machine: NamespaceStateMachine): Promise<CallReply> {
    const s = this.ns(req.namespace)
    const { actor } = req
    const previous = s.recordLocks.get(actor) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((r) => {
      release = r
    })
    s.recordLocks.set(actor, mine)
    try {
      await previous
      const known = s.records.get(actor)
      const records = known ?? decodeRecords(await machine.store.get(actor, IDEMPOTENCY_KEY))
      const now = Date.now()
      const hit = records.find(([k, at]) => k === req.idempotencyKey && now - at <= this.idempotencyWindowMs)
      if (hit) return { reply: hit[2], servedBy: this.self, replayed: true }
      return await this.write(req, machine, {
        record: (reply) => {
          const next = this.prune([...records, [req.idempotencyKey!, now, reply]], now)
          s.records.set(actor, next)
          return { actor, key: IDEMPOTENCY_KEY, value: packr.pack(next) }
        },
        proposed: (gate) => {
          release()
          const next = s.records.get(actor)
          const forget = () => {
            if (s.records.get(actor) === next) s.records.delete(actor)
          }
          gate.then(forget, forget)
        },
      })
    } finally {
      release()
      if (s.recordLocks.get(actor) === mine) s.recordLocks.delete(actor)
    }
  }

  /** Drops expired records, then the oldest beyond the per-actor count and byte bounds. */
  private prune(records: IdempotencyRecord[], now: number): IdempotencyRecord[] {
    const live = records.filter(([, at]) => now - at <= this.idempotencyWindowMs)
    let bytes = live.reduce((n, [k, , r]) => n + k.length + r.length + 16, 0)
    while (live.length > 1 && (live.length > this.idempotencyKeysMax || bytes > this.idempotencyBytesMax)) {
      const [k, , r] = live.shift()!
      bytes -= k.length + r.length + 16
    }
    return live
  }

  /** A call that may write: run, propose its write set and broadcasts, reply once applied. */
  private async write(
    req: CallRequest,
    machine: NamespaceStateMachine,
    keyed?: {
      record: (reply: Uint8Array) => StateWrite
      proposed: (gate: Promise<void>) => void
    },
  ): Promise<CallReply> {
    const { namespace, actor } = req
    const s = this.ns(namespace)
    const r = await this.runtime.call(namespace, actor, req.method, req.payload)
    const writes: StateWrite[] = r.writes
    if (keyed) writes.push(keyed.record(r.reply))
    if (writes.length === 0 && r.broadcasts.length === 0) {
      // Nothing to commit, but the reply still depends on state: confirm this node is still the
      // leader (ReadIndex after the call ran), or a cut-off leader answers from stale state.
      await this.driver.readIndex(namespace)
      await s.gates.get(actor)
      this.runtime.commit(namespace, actor, r.callId)
      return { reply: r.reply, servedBy: this.self, fuelUsed: r.fuelUsed }
    }
    try {
      machine.store.checkWrites(writes)
    } catch (e) {
      this.runtime.discard(namespace, actor)
      s.records.delete(actor)
      throw e
    }
    const entry: NamespaceEntry = {
      epoch: s.epoch,
      seq: ++s.seq,
      base: s.base,
      writes,
      ...(r.broadcasts.length > 0 ? { events: r.broadcasts.map((data) => ({ actor, data })) } : {}),
    }
    const gate = this.propose(namespace, machine, entry)
    keyed?.proposed(gate)
    s.gates.set(actor, gate)
    const forget = () => {
      if (s.gates.get(actor) === gate) s.gates.delete(actor)
    }
    gate.then(forget, forget)
    await gate
    this.runtime.commit(namespace, actor, r.callId)
    return { reply: r.reply, servedBy: this.self, fuelUsed: r.fuelUsed }
  }

  /**
   * Proposes one chained entry and waits until it is applied here. Any failure voids this
   * stint's chain: resident state goes and the next call starts a new epoch.
   */
  private async propose(
    namespace: string,
    machine: NamespaceStateMachine,
    entry: NamespaceEntry,
  ): Promise<void> {
    let index: number
    try {
      index = await this.driver.propose(namespace, encodeNamespaceEntry(entry))
    } catch (e) {
      this.becomeFollower(namespace)
      if (e instanceof ProposalDroppedError) {
        if (e.reason === 'no-leader') throw new NotLeaderError(namespace, e.leader)
        throw new NotAppliedError(`Call on '${namespace}' was not applied (${e.reason}); retry`)
      }
      if ((e as { code?: string }).code === 'ACTORMESH_PROPOSAL_OUTCOME_UNKNOWN') {
        throw new OutcomeUnknownError(
          `Call on '${namespace}' may or may not have been applied: ${(e as Error).message}`,
        )
      }
      throw e
    }
    const outcome = machine.outcome(index)
    if (!outcome.applied) {
      this.becomeFollower(namespace)
      throw new NotAppliedError(`Call on '${namespace}' was not applied: ${outcome.message}; retry`)
    }
  }

  /** Leader side of alarms: run `alarm` for every due actor, once at a time per actor. */
  private fireAlarms(): void {
    const now = Date.now()
    for (const [namespace, s] of this.state) {
      if (s.alarms.size === 0 || this.driver.leader(namespace) !== this.self) continue
      for (const [actor, atMs] of s.alarms) {
        if (atMs > now || s.firing.has(actor)) continue
        s.firing.add(actor)
        this.execute({ namespace, actor, method: 'alarm', payload: new Uint8Array(0) })
          .catch((e: unknown) => {
            if (e instanceof MethodNotFoundError) s.alarms.delete(actor) // nothing would ever clear it
            this.log.debug({ ns: namespace, actor, err: String(e) }, 'alarm call failed; will retry')
          })
          .finally(() => s.firing.delete(actor))
      }
    }
  }
}

function decodeRecords(raw: Uint8Array | undefined): IdempotencyRecord[] {
  if (!raw) return []
  const v = packr.unpack(raw) as unknown
  return Array.isArray(v) ? (v as IdempotencyRecord[]) : []
}
