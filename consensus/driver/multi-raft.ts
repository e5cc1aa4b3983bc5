import { ProposalDroppedError } from '../errors.js'
import { RawNode } from '../raft.js'
import type { Frame, Transport, TransportHandler } from '../transport.js'
import {
  type BasicStatus,
  type ConfChange,
  type ConfState,
  type GroupWrite,
  type Logger,
  type LogStore,
  type Message,
  MessageType,
  type NodeId,
  type RandomInt,
  type Ready,
  type Snapshot,
  type Status,
  type Storage,
} from '../types.js'
import type { CreateGroupOptions, MultiRaft, MultiRaftOptions, MultiRaftStats } from './api.js'
import { applyReady } from './apply.js'
import { type ResolvedConfig, resolveConfig } from './config.js'
import { Incarnation } from './envelope.js'
import { DriverClosedError, GroupConflictError, GroupNotFoundError, TooManyPendingError } from './errors.js'
import { GroupState, type PendingInstall, type PendingProposal, type PendingRead } from './group.js'
import { groupLogger, silentLogger, withAbort } from './helpers.js'
import { deferrable, Outbox } from './outbox.js'

/** Whether a Ready has anything for steps 3 and 4 (most idle Readys carry only messages). */
function needsApply(rd: Ready): boolean {
  return (
    rd.committedEntries.length > 0 ||
    rd.readStates.length > 0 ||
    rd.snapshot !== undefined ||
    rd.softState !== undefined ||
    rd.hardState !== undefined
  )
}

/** Creates a driver and starts listening on its transport. */
export function createMultiRaft(options: MultiRaftOptions): MultiRaft {
  return new Driver(options)
}

class Driver implements MultiRaft, TransportHandler {
  readonly id: NodeId
  private readonly config: ResolvedConfig
  private readonly transport: Transport
  private readonly logStore: LogStore
  private readonly random: RandomInt
  private readonly logger: Logger
  private readonly scheduleFn: (run: () => void) => void
  private readonly incarnation: Incarnation
  private readonly heartbeatTicks: number
  private readonly outbox: Outbox
  private readonly groupsByName = new Map<string, GroupState>()
  /** Groups that tick: everything not quiesced. */
  private readonly active = new Set<GroupState>()
  /** Groups that may have a Ready. */
  private readonly dirty = new Set<GroupState>()
  /** Groups that may just have quiesced (checked at the end of a turn). */
  private readonly quiesceCheck = new Set<GroupState>()
  /** Groups with buffered proposals or reads. */
  private readonly submitting = new Set<GroupState>()
  /** Groups with requests that can time out. */
  private readonly pending = new Set<GroupState>()
  /** Groups whose snapshot install settled; the next turn advances them (see `startInstall`). */
  private readonly installsSettled = new Set<GroupState>()
  /** Aborted on close: stops snapshot installs running in the background. */
  private readonly shutdown = new AbortController()
  private tickCount = 0
  private flushDeferred = false
  private scheduled = false
  private running = false
  private closed = false
  private failure: Error | undefined
  private idleWaiters: Array<() => void> = []
  private turnWaiters: Array<() => void> = []
  private turns = 0
  private persistCalls = 0
  private proposals = 0
  private proposalsFailed = 0
  private leaderChanges = 0
  private proposalApplied: ((ms: number) => void) | undefined
  private messagesDropped = 0

  constructor(options: MultiRaftOptions) {
    if (!options.id) throw new TypeError("Cannot create the Raft driver: 'id' is empty")
    this.id = options.id
    this.config = resolveConfig(options.config)
    this.transport = options.transport
    this.logStore = options.logStore
    this.random = options.random
    this.logger = options.logger ?? silentLogger
    this.scheduleFn = options.schedule ?? ((run) => setImmediate(run))
    this.incarnation = new Incarnation(this.random, options.incarnation)
    this.heartbeatTicks = this.config.raft.heartbeatTicks ?? 1
    this.outbox = new Outbox(this.transport, this.config.frameBytesMax, this.config.deferredMessagesMax)
    this.transport.listen(this)
  }

  // ---- groups ------------------------------------------------------------------------------------

  createGroup(group: string, options: CreateGroupOptions): void {
    this.assertOpen()
    if (typeof group !== 'string' || group === '')
      throw new TypeError(`Cannot create group '${group}': empty name`)
    if (this.groupsByName.has(group)) throw new GroupConflictError(group, 'this node already hosts it')
    if (this.groupsByName.size >= this.config.groupsMax)
      throw new GroupConflictError(group, `groupsMax (${this.config.groupsMax}) reached`)
    const storage = this.logStore.open(group, options.bootstrap)
    const applied = this.resumePoint(storage, options.applied)
    const node = new RawNode({
      ...this.config.raft,
      id: this.id,
      storage,
      ...(applied !== undefined ? { applied } : {}),
      random: this.random,
      logger: groupLogger(this.logger, group),
      tickPhase: this.tickCount,
    })
    const st = node.status()
    const g = new GroupState(
      group,
      node,
      options.stateMachine,
      this.tickCount,
      st.term,
      st.applied,
      st.conf,
      storage.firstIndex() - 1,
    )
    this.groupsByName.set(group, g)
    this.active.add(g)
    const snap = storage.snapshot()
    if (snap.meta.index > (options.applied ?? 0)) this.startInstall(g, undefined, snap)
    this.touch(g)
  }

  /**
   * Where Raft resumes applying a group on (re)start, given what its state machine durably holds:
   * - behind the log store's snapshot (a state machine that keeps nothing across restarts, or a
   *   crash between persisting a received snapshot and installing it): at the snapshot, which
   *   `createGroup` installs before any later entry (not at the log's first index: entries kept
   *   below a snapshot are already in it);
   * - ahead of the commit index (it installed a copy newer than the snapshot it was sent): at the
   *   commit index, which Raft's applied point cannot pass; the entries between come again and the
   *   state machine skips what it holds (see `CreateGroupOptions.applied`).
   */
  private resumePoint(storage: Storage, applied: number | undefined): number | undefined {
    const snapIndex = storage.snapshot().meta.index
    if (snapIndex > (applied ?? 0)) return snapIndex
    if (applied === undefined) return undefined
    return Math.min(applied, storage.initialState().hardState.commit)
  }

  async removeGroup(group: string, options?: { signal?: AbortSignal }): Promise<void> {
    options?.signal?.throwIfAborted()
    const g = this.get(group)
    g.removed = true
    this.groupsByName.delete(group)
    this.active.delete(g)
    this.dirty.delete(g)
    this.pending.delete(g)
    g.leadershipLost(this.turns, 'group-removed')
    g.install?.abort.abort(new GroupNotFoundError(group))
    // A turn may be persisting this group's writes: drop only after it, so nothing reappears.
    await this.turnFinished()
    // Nor may an install still touch the state machine once the caller gets it back.
    await g.install?.done
    await this.logStore.drop(group, options)
  }

  async dropLog(group: string, options?: { signal?: AbortSignal }): Promise<void> {
    options?.signal?.throwIfAborted()
    if (this.groupsByName.has(group)) throw new RangeError(`Cannot drop the log of hosted group '${group}'`)
    await this.turnFinished()
    await this.logStore.drop(group, options)
  }

  groups(): string[] {
    return [...this.groupsByName.keys()]
  }

  status(group: string): Status {
    return this.get(group).node.status()
  }

  basicStatus(group: string): BasicStatus {
    return this.get(group).node.basicStatus()
  }

  leader(group: string): NodeId {
    return this.get(group).lead
  }

  campaign(group: string): void {
    const g = this.get(group)
    this.activate(g)
    g.node.campaign()
    this.touch(g)
  }

  transferLeadership(group: string, to: NodeId): void {
    const g = this.get(group)
    this.activate(g)
    g.node.transferLeadership(to)
    this.touch(g)
  }

  peerDown(peer: NodeId, options?: { gone?: boolean }): void {
    this.assertOpen()
    // Rare (a peer's death), so a scan of every group is fine; ticks never scan quiesced groups.
    for (const g of this.groupsByName.values()) {
      if (g.lead !== peer) continue
      this.activate(g)
      g.node.wake()
      // The group's name orders its survivors' turns alike on every node, differently per group.
      if (options?.gone) g.node.leaderLost(peer, nameHash(g.name))
      this.touch(g)
    }
  }

  // ---- requests ----------------------------------------------------------------------------------

  propose(group: string, data: Uint8Array, options?: { signal?: AbortSignal }): Promise<number> {
    try {
      options?.signal?.throwIfAborted()
      if (!(data instanceof Uint8Array))
        throw new TypeError(`Cannot propose to group '${group}': data is not bytes`)
      const g = this.get(group)
      if (g.proposals.size >= this.config.pendingProposalsMax)
        throw new TooManyPendingError(group, 'pendingProposalsMax', this.config.pendingProposalsMax)
      const seq = (g.proposalSeq = (g.proposalSeq + 1) >>> 0)
      const started = performance.now()
      this.proposals++
      let p!: PendingProposal
      const promise = new Promise<number>((resolve, reject) => {
        p = {
          seq,
          data: this.incarnation.wrap(seq, data),
          submitTurn: 0,
          deadlineTick: this.tickCount + this.config.requestTimeoutTicks,
          resolve: (index) => {
            this.proposalApplied?.(performance.now() - started)
            resolve(index)
          },
          reject: (error) => {
            this.proposalsFailed++
            reject(error)
          },
          settled: false,
        }
      })
      g.proposals.set(seq, p)
      // Buffered until the turn: Raft then appends (and replicates) the whole batch at once.
      g.buffered.push(p)
      if (options?.signal) withAbort(p, options.signal, () => g.proposals.delete(seq))
      this.submitting.add(g)
      this.pending.add(g)
      this.touch(g)
      return promise
    } catch (e) {
      return Promise.reject(e)
    }
  }

  proposeConfChange(
    group: string,
    change: ConfChange,
    options?: { signal?: AbortSignal },
  ): Promise<ConfState> {
    try {
      options?.signal?.throwIfAborted()
      const g = this.get(group)
      if (g.confChange) {
        throw new ProposalDroppedError(
          'pending-conf-change',
          g.lead,
          `Cannot change group '${group}': a change is pending`,
        )
      }
      g.node.proposeConfChange(change) // throws ProposalDroppedError / RangeError: nothing appended
      const st = g.node.status()
      const promise = new Promise<ConfState>((resolve, reject) => {
        g.confChange = {
          index: st.lastIndex,
          term: st.term,
          deadlineTick: this.tickCount + this.config.requestTimeoutTicks,
          resolve,
          reject,
        }
      })
      this.activate(g)
      this.pending.add(g)
      this.touch(g)
      return promise
    } catch (e) {
      return Promise.reject(e)
    }
  }

  readIndex(group: string, options?: { signal?: AbortSignal }): Promise<void> {
    try {
      options?.signal?.throwIfAborted()
      const g = this.get(group)
      if (g.reads.size >= this.config.pendingReadsMax)
        throw new TooManyPendingError(group, 'pendingReadsMax', this.config.pendingReadsMax)
      const seq = (g.readSeq = (g.readSeq + 1) >>> 0)
      this.submitting.add(g)
      this.touch(g)
      this.pending.add(g)
      return new Promise<void>((resolve, reject) => {
        const r: PendingRead = {
          seq,
          batch: 0,
          submitTurn: 0,
          index: -1,
          deadlineTick: this.tickCount + this.config.requestTimeoutTicks,
          resolve,
          reject,
          settled: false,
        }
        g.reads.set(seq, r)
        // Buffered: one ReadIndex per group per turn serves every read invoked before it.
        g.bufferedReads.push(r)
        if (options?.signal) withAbort(r, options.signal, () => g.reads.delete(seq))
      })
    } catch (e) {
      return Promise.reject(e)
    }
  }

  // ---- time and input ----------------------------------------------------------------------------

  tick(): void {
    this.assertOpen()
    this.tickCount++
    for (const g of this.active) {
      g.node.tick()
      g.ticks++
      this.dirty.add(g)
    }
    for (const g of this.pending) {
      g.expire(this.tickCount)
      if (!g.hasPending()) this.pending.delete(g)
    }
    // Held heartbeat answers ride with the next heartbeat frame: one frame per pair per interval.
    if (this.tickCount % this.heartbeatTicks === 0) this.flushDeferred = true
    this.schedule()
  }

  /** Transport: steps every message of a frame into its group; the next turn answers. */
  onFrame(from: NodeId, frame: Frame): void {
    if (this.closed) return
    for (const { group, message: m } of frame.messages) {
      const g = this.groupsByName.get(group)
      if (!g || m.to !== this.id || m.from !== from) {
        this.messagesDropped++
        continue
      }
      if (m.type === MessageType.Heartbeat && m.quiesce) this.quiesceCheck.add(g)
      else if (!deferrable(m)) this.activate(g) // the same rule as the core's: these wake a group
      try {
        g.node.step(m)
      } catch (e) {
        this.logger.error({ group, from, type: m.type, err: e }, 'dropped a message the group could not step')
      }
      this.dirty.add(g)
    }
    this.schedule()
  }

  /** Transport: a frame to `peer` was dropped. Quiesced groups send nothing, so they need not know. */
  onUnreachable(peer: NodeId): void {
    if (this.closed) return
    for (const g of this.active) {
      g.node.reportUnreachable(peer)
      this.dirty.add(g)
    }
    this.schedule()
  }

  // ---- turns -------------------------------------------------------------------------------------

  private touch(g: GroupState): void {
    this.dirty.add(g)
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.closed) return
    this.scheduled = true
    this.scheduleFn(() => {
      this.scheduled = false
      void this.runTurn()
    })
  }

  private async runTurn(): Promise<void> {
    if (this.closed || this.running) return
    this.running = true
    try {
      await this.turn()
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)))
    } finally {
      this.running = false
      const waiters = this.turnWaiters
      this.turnWaiters = []
      for (const w of waiters) w()
    }
    if (this.dirty.size > 0 || this.flushDeferred || this.installsSettled.size > 0) this.schedule()
    if (!this.scheduled && !this.running) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  /** One turn: collect Readys, persist them in one batch, send one frame per peer, apply, advance. */
  private async turn(): Promise<void> {
    this.turns++
    const flushDeferred = this.flushDeferred
    this.flushDeferred = false
    for (const g of this.submitting) {
      this.submitProposals(g)
      this.submitReads(g)
    }
    this.submitting.clear()
    for (const g of this.installsSettled) this.finishInstall(g)
    this.installsSettled.clear()
    const work: Array<[GroupState, Ready]> = []
    for (const g of this.dirty) {
      // A group installing a snapshot still holds its last Ready: no other until it is advanced.
      if (!g.removed && !g.install && g.node.hasReady()) work.push([g, g.node.ready()])
    }
    this.dirty.clear()
    const writes: GroupWrite[] = []
    let sync = false
    for (const [g, rd] of work) {
      if (rd.entries.length === 0 && !rd.hardState && !rd.snapshot) continue
      sync ||= rd.mustSync
      const w: GroupWrite = { group: g.name, entries: rd.entries }
      if (rd.hardState) w.hardState = rd.hardState
      if (rd.snapshot) w.snapshot = rd.snapshot
      writes.push(w)
    }
    if (writes.length > 0) {
      // A leader's appends and heartbeats go out first: followers write while the leader does.
      let early = false
      for (const [g, rd] of work) {
        if (rd.sendBeforePersist === 0) continue
        this.queueMessages(g, rd.messages, 0, rd.sendBeforePersist)
        early = true
      }
      if (early) this.outbox.flush(false)
      this.persistCalls++
      await this.logStore.persist(writes, { sync })
    }
    for (const [g, rd] of work) {
      if (rd.softState && rd.softState.lead !== g.lead) this.leaderChanges++
      this.queueMessages(g, rd.messages, writes.length > 0 ? rd.sendBeforePersist : 0)
    }
    this.outbox.flush(flushDeferred)
    // Groups are independent: an asynchronous state machine applies them concurrently (each in
    // log order); compaction then runs one group at a time. A snapshot may take long to install
    // (a namespace fetches its database from a peer), so it runs in the background instead.
    const applying: Promise<void>[] = []
    for (const [g, rd] of work) {
      if (g.removed || !needsApply(rd)) continue
      if (rd.snapshot) this.startInstall(g, rd, rd.snapshot)
      else applying.push(applyReady(g, rd, this.incarnation, this.turns))
    }
    if (applying.length > 0) await Promise.all(applying)
    for (const [g, rd] of work) {
      if (g.removed || g.install) continue
      const every = this.config.snapshotEveryEntries
      if (every > 0 && g.applied - g.snapshotIndex >= every) await this.compact(g)
      g.node.advance(rd)
      if (g.node.hasReady()) this.dirty.add(g)
    }
    for (const g of this.quiesceCheck) {
      if (!g.removed && g.active && g.node.quiesced) this.deactivate(g)
    }
    this.quiesceCheck.clear()
  }

  /**
   * Hands a group's buffered proposals to Raft as one batch, so the leader appends them in one go
   * and sends one append per follower instead of one per proposal. The batch is all or nothing: a
   * refusal (no leader, transfer, uncommitted-bytes bound) rejects every proposal in it as dropped.
   */
  private submitProposals(g: GroupState): void {
    const batch = g.buffered
    g.buffered = []
    if (g.removed || batch.length === 0) return
    this.activate(g)
    const live = batch.filter((p) => !p.settled) // aborted ones are not sent
    if (live.length === 0) return
    for (const p of live) p.submitTurn = this.turns
    try {
      g.node.proposeBatch(live.map((p) => p.data))
    } catch (e) {
      for (const p of live) g.failProposal(p, e as Error)
    }
  }

  /** Issues one ReadIndex request for every read buffered in `g` since the last turn. */
  private submitReads(g: GroupState): void {
    const reads = g.bufferedReads.filter((r) => !r.settled)
    g.bufferedReads = []
    if (g.removed || reads.length === 0) return
    this.activate(g)
    const batch = (g.readBatchSeq = (g.readBatchSeq + 1) >>> 0)
    try {
      g.node.readIndex(this.incarnation.readContext(batch))
    } catch (e) {
      g.failReads(reads, e as Error)
      return
    }
    for (const r of reads) {
      r.batch = batch
      r.submitTurn = this.turns
    }
    g.readBatches.set(batch, reads)
  }

  /** Queues `messages[from, to)` of group `g` in the outbox. */
  private queueMessages(g: GroupState, messages: Message[], from = 0, to = messages.length): void {
    for (let i = from; i < to; i++) {
      const m = messages[i]!
      if (m.type === MessageType.Heartbeat && m.quiesce) this.quiesceCheck.add(g)
      this.outbox.add(g.name, m)
    }
  }

  /** Log compaction: snapshot the state machine at `applied` and let the log store trim the log. */
  private async compact(g: GroupState): Promise<void> {
    if (!g.stateMachine.snapshot) return
    const data = await g.stateMachine.snapshot(g.name)
    const snap = await this.logStore.snapshot(
      g.name,
      g.applied,
      g.conf,
      data,
      this.config.snapshotKeepEntries,
    )
    g.snapshotIndex = snap.meta.index
  }

  // ---- snapshot installs -------------------------------------------------------------------------

  /**
   * Installs `snap` into `g`'s state machine without holding up the turns: `g` keeps `ready` (the
   * Ready that carried it) un-advanced and is left out of every turn until the install settles.
   * Messages and ticks are still stepped into its RawNode meanwhile (Raft allows that while a Ready
   * is outstanding); what they produce waits for the group's next Ready. Other groups go on.
   */
  private startInstall(g: GroupState, ready: Ready | undefined, snap: Snapshot): void {
    const abort = new AbortController()
    const signal = AbortSignal.any([abort.signal, this.shutdown.signal])
    const turn = this.turns
    const install: PendingInstall = { ready, abort, done: Promise.resolve(), error: undefined }
    const run = async () => {
      if (ready) return applyReady(g, ready, this.incarnation, turn, signal)
      const done = g.stateMachine.applySnapshot(snap, g.name, { signal })
      if (done) await done
    }
    install.done = run().then(
      () => this.installSettled(g),
      (e: unknown) => {
        install.error = e instanceof Error ? e : new Error(String(e))
        this.installSettled(g)
      },
    )
    g.install = install
  }

  private installSettled(g: GroupState): void {
    if (this.closed) return
    this.installsSettled.add(g)
    this.schedule()
  }

  /** An install settled: advance the Ready it held and let the group's turns go on. */
  private finishInstall(g: GroupState): void {
    const install = g.install
    if (!install) return
    g.install = undefined
    if (g.removed) return
    // As with any apply failure, the Ready cannot be taken back: the turn fails and the driver stops.
    if (install.error) throw install.error
    if (install.ready) g.node.advance(install.ready)
    this.dirty.add(g)
  }

  // ---- quiescence --------------------------------------------------------------------------------

  /** Returns a quiesced group to the tick set, first lining its heartbeat phase up with the others. */
  private activate(g: GroupState): void {
    if (g.active || g.removed) return
    const every = this.heartbeatTicks
    const lag = (((this.tickCount - g.ticks) % every) + every) % every
    // Ticks on a quiesced RawNode only advance its counter: this restores the common phase.
    for (let i = 0; i < lag; i++) g.node.tick()
    g.ticks += lag
    g.active = true
    this.active.add(g)
  }

  private deactivate(g: GroupState): void {
    g.active = false
    this.active.delete(g)
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  stats(): MultiRaftStats {
    return {
      groups: this.groupsByName.size,
      activeGroups: this.active.size,
      ticks: this.tickCount,
      turns: this.turns,
      persistCalls: this.persistCalls,
      framesSent: this.outbox.framesSent,
      messagesSent: this.outbox.messagesSent,
      messagesDropped: this.messagesDropped,
      busy: this.running || this.scheduled,
      proposals: this.proposals,
      proposalsFailed: this.proposalsFailed,
      leaderChanges: this.leaderChanges,
    }
  }

  onProposalApplied(listener: (ms: number) => void): void {
    this.proposalApplied = listener
  }

  whenIdle(options?: { signal?: AbortSignal }): Promise<void> {
    const signal = options?.signal
    signal?.throwIfAborted()
    if (!this.scheduled && !this.running) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done)
        reject(signal?.reason)
      }
      const done = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.idleWaiters.push(done)
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.shutdown.abort(new DriverClosedError())
    await this.turnFinished()
    // The owner closes the state machines' stores next: no install may still be writing to them.
    for (const g of this.groupsByName.values()) await g.install?.done
    this.rejectEverything(() => new DriverClosedError())
    await this.transport.close()
  }

  private async turnFinished(): Promise<void> {
    while (this.running) {
      await new Promise<void>((resolve) => this.turnWaiters.push(resolve))
    }
  }

  /** A turn could not be persisted or applied: the Readys cannot be taken back, so stop (like etcd). */
  private fail(e: Error): void {
    this.failure = e
    this.closed = true
    this.shutdown.abort(new DriverClosedError(`a turn failed (${e.message})`))
    this.logger.error({ err: e }, 'Raft driver stopped: a turn failed')
    this.rejectEverything(() => new DriverClosedError(`a turn failed (${e.message})`))
    void this.transport.close()
  }

  private rejectEverything(error: () => Error): void {
    for (const g of this.groupsByName.values()) g.rejectAll(error, error)
    this.outbox.clear()
    this.active.clear()
    this.dirty.clear()
    this.pending.clear()
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }

  private assertOpen(): void {
    if (this.failure) throw new DriverClosedError(`a turn failed (${this.failure.message})`)
    if (this.closed) throw new DriverClosedError()
  }

  private get(group: string): GroupState {
    this.assertOpen()
    const g = this.groupsByName.get(group)
    if (!g) throw new GroupNotFoundError(group)
    return g
  }
}

/** FNV-1a of `name`: a number every node derives alike from a group's name. */
function nameHash(name: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0
  return h
}
