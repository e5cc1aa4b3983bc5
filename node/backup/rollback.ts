/**
 * Rolling a namespace back to an archived copy through its Raft log (docs/backup.md, "Rollback").
 * The bytes never enter the log: the coordinator first stages the copy on every replica
 * (node/backup/stage.ts), then the leader proposes one small *restore entry* naming it. Every
 * replica applies that entry at the same index the same way — the entries before it on the old
 * state, then the staged copy with its applied point moved to the entry's index and the entry
 * chain reset, then the entries after it on the restored state — so all replicas change together.
 */
import { stat } from 'node:fs/promises'
import type { Snapshot } from '../../consensus/index.js'
import {
  type NamespaceStore,
  rebaseNamespaceFile,
  type StateWrite,
  swapNamespaceFile,
} from '../../storage/index.js'
import { NAMESPACE_META_ACTOR } from '../namespace-group.js'
import type { NamespaceSnapshotTransfer } from '../namespace-snapshot.js'

/** The reserved key (of the namespace's own actor) holding the id of the last restore applied. */
export const RESTORE_KEY = 'restore'

/** How long a replica without the staged copy keeps trying to pull the restored state from a peer. */
export const RESTORE_FALLBACK_TIMEOUT_MS = 10 * 60_000

/** What a restore entry carries (a field of the namespace entry, node/namespace-group.ts). */
export interface RestoreCommand {
  /** The staging id: each replica holds the copy as `<name>.db.stage-<id>` beside the database. */
  id: string
  /** Size and SHA-256 of the staged file (as staged, before its applied point moves). */
  bytes: number
  sha256: string
  /** The archived copy's own applied point (for logs and answers). */
  fromIndex: number
  fromTerm: number
  /** The replicas that staged it: where a replica without the copy pulls the restored state from. */
  staged: string[]
}

/** Where a replica keeps staged copy `id` of `store`'s namespace. */
export function stagedPath(store: NamespaceStore, id: string): string {
  return `${store.path}.stage-${id}`
}

/** A staging id: 16 hex digits (it becomes part of a file name, so nothing else is accepted). */
export const STAGE_ID = /^[0-9a-f]{16}$/

/** Whether `value` is a well-formed restore command (entries are checked before they are trusted). */
export function isRestoreCommand(value: unknown): value is RestoreCommand {
  const c = value as RestoreCommand
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.id === 'string' &&
    STAGE_ID.test(c.id) &&
    Number.isSafeInteger(c.bytes) &&
    typeof c.sha256 === 'string' &&
    Number.isSafeInteger(c.fromIndex) &&
    Number.isSafeInteger(c.fromTerm) &&
    Array.isArray(c.staged) &&
    c.staged.every((p) => typeof p === 'string')
  )
}

/**
 * Applies a restore entry at `at` to `store`: moves the staged copy's applied point to `at` with
 * `chain` (the reset entry chain) written in the same transaction, then swaps it in atomically. A
 * crash before the swap leaves the staged copy, and applying again moves it to the same point. A
 * replica without the staged copy (down while it was staged, or added since) instead pulls the
 * namespace at `at.index` or later from a replica that staged it, as a snapshot install would —
 * inside its apply, so its other groups wait meanwhile (documented as a limit). A second entry with
 * the id of the last restore applied (a retried proposal) changes nothing, on every replica alike:
 * the id is stored in the restored state.
 */
export async function applyRestore(
  store: NamespaceStore,
  at: { index: number; term: number },
  command: RestoreCommand,
  chain: StateWrite[],
  transfer: NamespaceSnapshotTransfer | undefined,
): Promise<'swapped' | 'pulled' | 'already' | 'duplicate'> {
  if (store.applied().index >= at.index) return 'already'
  const last = await store.get(NAMESPACE_META_ACTOR, RESTORE_KEY)
  if (last && Buffer.from(last).toString('utf8') === command.id) return 'duplicate'
  const staged = stagedPath(store, command.id)
  const present = await stat(staged).then(
    () => true,
    () => false,
  )
  if (present) {
    const point = { index: at.index, term: at.term, conf: store.applied().conf }
    const marker = {
      actor: NAMESPACE_META_ACTOR,
      key: RESTORE_KEY,
      value: new Uint8Array(Buffer.from(command.id)),
    }
    await rebaseNamespaceFile(staged, store.config.name, point, [...chain, marker], {
      ...(store.config.encryptionKey !== undefined ? { encryptionKey: store.config.encryptionKey } : {}),
    })
    await swapNamespaceFile(store, staged, at)
    return 'swapped'
  }
  if (!transfer)
    throw new Error(
      `Cannot apply the restore of namespace '${store.config.name}' at ${at.index}: staged copy '${command.id}' is missing and no snapshot transfer is configured`,
    )
  const snapshot: Snapshot = {
    meta: { index: at.index, term: at.term, conf: { voters: command.staged, learners: [] } },
    data: new Uint8Array(0),
  }
  await transfer.install(store, snapshot, { signal: AbortSignal.timeout(RESTORE_FALLBACK_TIMEOUT_MS) })
  return 'pulled'
}
