/** Configuration of the multi-Raft driver. Every limit is named, with its unit last (STYLE.md §7). */
import type { RaftConfig } from '../raft.js'

/** Raft options applied to every hosted group (the driver supplies id, storage, random and phase). */
export type GroupRaftOptions = Partial<
  Omit<RaftConfig, 'id' | 'storage' | 'applied' | 'random' | 'logger' | 'tickPhase'>
>

/** The driver's own limits, plus the Raft options of its groups. */
export interface MultiRaftConfig {
  raft?: GroupRaftOptions
  /** Groups one driver may host. */
  groupsMax?: number
  /** Bytes one frame may carry (estimated); a turn's messages for a peer are split beyond it. */
  frameBytesMax?: number
  /** Proposals waiting per group; beyond it `propose` throws `TooManyPendingError`. */
  pendingProposalsMax?: number
  /** Reads waiting per group; beyond it `readIndex` throws `TooManyPendingError`. */
  pendingReadsMax?: number
  /** Ticks a proposal or read may wait before it is rejected as outcome unknown / not confirmed. */
  requestTimeoutTicks?: number
  /** Heartbeat answers held per peer before they are sent without waiting for a tick. */
  deferredMessagesMax?: number
  /** Applied entries after which a group with `stateMachine.snapshot` compacts its log; 0 = never. */
  snapshotEveryEntries?: number
  /** Entries kept below a snapshot so that slightly lagging followers need no snapshot. */
  snapshotKeepEntries?: number
}

/** `MultiRaftConfig` with every default filled in. */
export type ResolvedConfig = Required<Omit<MultiRaftConfig, 'raft'>> & { raft: GroupRaftOptions }

export function resolveConfig(config: MultiRaftConfig = {}): ResolvedConfig {
  const resolved: ResolvedConfig = {
    raft: config.raft ?? {},
    groupsMax: config.groupsMax ?? 100_000,
    frameBytesMax: config.frameBytesMax ?? 4 << 20,
    pendingProposalsMax: config.pendingProposalsMax ?? 10_000,
    pendingReadsMax: config.pendingReadsMax ?? 10_000,
    requestTimeoutTicks: config.requestTimeoutTicks ?? 50,
    deferredMessagesMax: config.deferredMessagesMax ?? 100_000,
    snapshotEveryEntries: config.snapshotEveryEntries ?? 10_000,
    snapshotKeepEntries: config.snapshotKeepEntries ?? 1_000,
  }
  for (const [key, value] of Object.entries(resolved)) {
    if (key === 'raft') continue
    if (!Number.isInteger(value) || (value as number) < 0)
      throw new RangeError(
        `Cannot create the Raft driver: ${key} must be a non-negative integer, got '${value}'`,
      )
  }
  for (const key of [
    'groupsMax',
    'frameBytesMax',
    'pendingProposalsMax',
    'pendingReadsMax',
    'requestTimeoutTicks',
  ] as const) {
    if (resolved[key] === 0) throw new RangeError(`Cannot create the Raft driver: ${key} must be positive`)
  }
  return resolved
}
