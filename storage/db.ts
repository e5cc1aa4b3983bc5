/**
 * One connection to a LibSQL database file, with its statements prepared once.
 *
 * `@libsql/client` prepares every statement anew on each `execute` and, for a statement that
 * returns no rows, learns that by catching the exception `raw()` throws: on the request path that
 * was 13% of a node's CPU (prepare 8%, the exception 4%, column names 1%; profile of the cluster
 * bench at 256 clients). `Db` sits on the same engine (`libsql`, which `@libsql/client` itself
 * opens `file:` URLs with) and keeps each distinct SQL text prepared, so a Raft append or a
 * namespace apply binds and steps statements and nothing else: a 3-statement transaction measured
 * 388 µs through the client, 134 µs here.
 *
 * Everything here is synchronous in the engine; the methods are async so callers do not depend on
 * that. Rows come back as arrays in column order, integers as numbers, BLOBs as `Uint8Array`.
 */
import Database from 'libsql'

/** A value bound to a statement parameter. */
export type SqlValue = null | number | bigint | string | Uint8Array

/** A statement: SQL text, with positional arguments when it has parameters. */
export type SqlStatement = string | { sql: string; args: readonly SqlValue[] }

/** One result row, its values in column order. */
export type Row = readonly unknown[]

/** What `execute` returns. */
export interface ResultSet {
  rows: Row[]
  /** Rows changed by an INSERT, UPDATE or DELETE; 0 for a query. */
  rowsAffected: number
}

/** Distinct SQL texts kept prepared per connection; the least recently used one goes first. */
export const PREPARED_STATEMENTS_MAX = 128

type Prepared = ReturnType<Database.Database['prepare']>

/** Opens (creating if missing) the database file at `path`. */
export function openConnection(path: string, encryptionKey?: string): Db {
  // The engine takes `encryptionKey` (as `@libsql/client` passes it); its bundled types omit it.
  const options: Database.Options & { encryptionKey?: string } =
    encryptionKey === undefined ? {} : { encryptionKey }
  return new Db(new Database(path, options))
}

export class Db {
  private readonly prepared = new Map<string, Prepared>()
  private isClosed = false

  constructor(private readonly db: Database.Database) {}

  get closed(): boolean {
    return this.isClosed
  }

  /** Runs one statement (in its own implicit transaction unless one is open). */
  async execute(stmt: SqlStatement): Promise<ResultSet> {
    return this.run(stmt)
  }

  /**
   * Runs `stmts` in one transaction: all of them or, when one fails, none (the error is thrown).
   * `write` takes the write lock up front (BEGIN IMMEDIATE); `read` and `deferred` when needed.
   */
  async batch(
    stmts: readonly SqlStatement[],
    mode: 'write' | 'read' | 'deferred' = 'deferred',
  ): Promise<void> {
    this.run(mode === 'write' ? 'BEGIN IMMEDIATE' : 'BEGIN DEFERRED')
    try {
      for (const stmt of stmts) this.run(stmt)
      this.run('COMMIT')
    } catch (error) {
      // A failed COMMIT or statement may already have ended the transaction (SQLite rolls back on
      // some errors by itself); roll back only what is still open.
      if (this.db.inTransaction) this.run('ROLLBACK')
      throw error
    }
  }

  /** Whether a transaction is open on this connection. */
  get inTransaction(): boolean {
    return !this.isClosed && this.db.inTransaction
  }

  /**
   * Runs `stmts` as one unit inside a write transaction that stays open after them (begun here
   * when none is): all of them or, when one fails, none — rolled back to a savepoint, the
   * transaction and what it held before kept, unless SQLite itself ended it (then `inTransaction`
   * is false and the error is thrown). `commitOpen` ends it.
   */
  async inOpenTransaction(stmts: readonly SqlStatement[]): Promise<void> {
    if (!this.db.inTransaction) this.run('BEGIN IMMEDIATE')
    this.run('SAVEPOINT unit')
    try {
      for (const stmt of stmts) this.run(stmt)
      this.run('RELEASE unit')
    } catch (error) {
      if (this.db.inTransaction) {
        this.run('ROLLBACK TO unit')
        this.run('RELEASE unit')
      }
      throw error
    }
  }

  /** Commits the open transaction, if there is one. Synchronous, as everything here is underneath. */
  commitOpen(): void {
    if (this.inTransaction) this.run('COMMIT')
  }

  close(): void {
    if (this.isClosed) return
    this.isClosed = true
    this.prepared.clear()
    this.db.close()
  }

  private run(stmt: SqlStatement): ResultSet {
    if (this.isClosed) throw new Error('The database connection is closed')
    const sql = typeof stmt === 'string' ? stmt : stmt.sql
    const args = typeof stmt === 'string' ? [] : stmt.args
    const prepared = this.statement(sql)
    if (prepared.reader) return { rows: prepared.all(args) as Row[], rowsAffected: 0 }
    return { rows: [], rowsAffected: prepared.run(args).changes }
  }

  private statement(sql: string): Prepared {
    let prepared = this.prepared.get(sql)
    if (prepared) {
      // Most recently used last: Map keeps insertion order, so the first key is the one to drop.
      this.prepared.delete(sql)
    } else {
      prepared = this.db.prepare(sql)
      if (prepared.reader) prepared.raw(true)
      if (this.prepared.size >= PREPARED_STATEMENTS_MAX)
        this.prepared.delete(this.prepared.keys().next().value!)
    }
    this.prepared.set(sql, prepared)
    return prepared
  }
}
