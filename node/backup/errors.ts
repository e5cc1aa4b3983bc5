/**
 * Errors of snapshot archives and restores (node/backup/). Each has a stable `code`, listed in
 * docs/errors.md. None is retryable with the same input.
 */

/** Base of every backup error. */
export class BackupError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}

/**
 * An archive is damaged: truncated, a flipped bit (a checksum, the whole-archive hash or an
 * encrypted chunk's tag does not match), malformed framing, or a manifest that disagrees with
 * the parts before it.
 */
export class ArchiveCorruptError extends BackupError {
  constructor(message: string) {
    super('ACTORMESH_ARCHIVE_CORRUPT', message)
  }
}

/** The archive was written in a format version this build cannot read (or is not an archive). */
export class ArchiveVersionError extends BackupError {
  constructor(message: string) {
    super('ACTORMESH_ARCHIVE_VERSION', message)
  }
}

/** The archive is encrypted and no key, or another key, was given; or a key file is malformed. */
export class ArchiveKeyError extends BackupError {
  constructor(message: string) {
    super('ACTORMESH_ARCHIVE_KEY', message)
  }
}

/** A member name in the archive would land outside the target directory (or is not `ns/<name>.db`). */
export class ArchiveMemberError extends BackupError {
  constructor(message: string) {
    super('ACTORMESH_ARCHIVE_MEMBER', message)
  }
}

/** A restore's target cannot take it: the data directory is not empty, or the namespace does not match. */
export class RestoreTargetError extends BackupError {
  constructor(message: string) {
    super('ACTORMESH_RESTORE_TARGET', message)
  }
}

/** A rollback could not stage the archived copy on every replica, so nothing was switched. */
export class RestoreStageError extends BackupError {
  readonly retryable = true
  constructor(message: string) {
    super('ACTORMESH_RESTORE_STAGE', message)
  }
}
