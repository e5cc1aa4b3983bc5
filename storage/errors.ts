/**
 * Errors of `storage/` that a caller handles. Each has a stable `code`, listed in docs/errors.md.
 * Invariant violations are not errors: they throw `AssertionError` from consensus.
 */

/** Base of every storage error. */
export class StorageError extends Error {
  /** Stable machine-readable code, `ACTORMESH_...`. */
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}

/**
 * A file's content is damaged: a checksum does not match, SQLite reports a malformed database, the
 * file is truncated, or a snapshot's SHA-256 differs from its metadata. Never retry with the same
 * bytes; restore the replica from a snapshot of a healthy one.
 */
export class StorageCorruptionError extends StorageError {
  constructor(
    /** The file (or snapshot) that is damaged. */
    readonly path: string,
    detail: string,
  ) {
    super('ACTORMESH_STORAGE_CORRUPT', `Cannot read '${path}': ${detail}`)
  }
}

/** An encrypted database was opened without its key, or with the wrong one. */
export class StorageKeyError extends StorageError {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super('ACTORMESH_STORAGE_KEY', `Cannot open '${path}': ${detail}`)
  }
}

/** A key or value is over its size limit; `limit` names the config value (`keyBytesMax`, ...). */
export class StorageLimitError extends StorageError {
  constructor(
    readonly limit: string,
    message: string,
  ) {
    super('ACTORMESH_STORAGE_LIMIT', message)
  }
}

/** Applying writes would take an actor over `actorStateBytesMax`; the whole batch is refused. */
export class StorageQuotaError extends StorageError {
  constructor(
    readonly limit: string,
    readonly actor: string,
    message: string,
  ) {
    super('ACTORMESH_STORAGE_QUOTA', message)
  }
}

/** The store was closed (or is being closed) when the call came. */
export class StorageClosedError extends StorageError {
  constructor(what: string) {
    super('ACTORMESH_STORAGE_CLOSED', `Cannot use ${what}: it is closed`)
  }
}
