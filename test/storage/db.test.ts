import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Db, openConnection, PREPARED_STATEMENTS_MAX } from '../../storage/db.js'

describe('Db', () => {
  let dir: string
  let db: Db

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'actormesh-db-'))
    db = openConnection(join(dir, 'a.db'))
    await db.execute('CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, n INTEGER)')
  })

  afterEach(async () => {
    db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('returns rows as arrays in column order, with integers as numbers and BLOBs as bytes', async () => {
    await db.execute({ sql: 'INSERT INTO kv VALUES (?, ?, ?)', args: ['a', new Uint8Array([1, 2]), 7] })
    const rs = await db.execute({ sql: 'SELECT n, k, v FROM kv WHERE k = ?', args: ['a'] })
    expect(rs.rows).toHaveLength(1)
    const [n, k, v] = rs.rows[0]!
    expect(n).toBe(7)
    expect(k).toBe('a')
    expect(v).toBeInstanceOf(Uint8Array)
    expect([...(v as Uint8Array)]).toEqual([1, 2])
  })

  it('keeps units in one open transaction: a failed unit leaves the earlier ones, commitOpen makes them visible', async () => {
    await db.execute('PRAGMA journal_mode=WAL')
    const other = openConnection(join(dir, 'a.db'))
    const ins = (k: string) => ({ sql: 'INSERT INTO kv VALUES (?, NULL, 1)', args: [k] })
    const keys = async (d: Db) => (await d.execute('SELECT k FROM kv ORDER BY k')).rows.map((r) => r[0])
    try {
      await db.inOpenTransaction([ins('a')])
      // The second unit fails on its duplicate: its first insert is rolled back, 'a' stays.
      await expect(db.inOpenTransaction([ins('b'), ins('a')])).rejects.toThrow(/UNIQUE/)
      expect(db.inTransaction).toBe(true)
      await db.inOpenTransaction([ins('c')])
      expect(await keys(db)).toEqual(['a', 'c'])
      expect(await keys(other)).toEqual([])
      db.commitOpen()
      expect(db.inTransaction).toBe(false)
      expect(await keys(other)).toEqual(['a', 'c'])
      db.commitOpen() // nothing open: nothing to do
    } finally {
      other.close()
    }
  })

  it('reports the rows a write changed', async () => {
    await db.batch(
      ['a', 'b', 'c'].map((k) => ({ sql: 'INSERT INTO kv VALUES (?, NULL, 1)', args: [k] })),
      'write',
    )
    const rs = await db.execute({ sql: 'UPDATE kv SET n = 2 WHERE k != ?', args: ['a'] })
    expect(rs.rowsAffected).toBe(2)
    expect(rs.rows).toEqual([])
  })

  it('applies all of a batch or, when a statement fails, none of it', async () => {
    await db.execute({ sql: 'INSERT INTO kv VALUES (?, NULL, 1)', args: ['taken'] })
    const failing = db.batch(
      [
        { sql: 'INSERT INTO kv VALUES (?, NULL, 1)', args: ['new'] },
        { sql: 'INSERT INTO kv VALUES (?, NULL, 1)', args: ['taken'] },
      ],
      'write',
    )
    await expect(failing).rejects.toMatchObject({ code: expect.stringMatching(/^SQLITE_CONSTRAINT/) })
    const rs = await db.execute('SELECT k FROM kv ORDER BY k')
    expect(rs.rows).toEqual([['taken']])
    // The connection is usable after the rollback: the next batch commits.
    await db.batch([{ sql: 'INSERT INTO kv VALUES (?, NULL, 1)', args: ['new'] }], 'write')
    expect((await db.execute('SELECT count(*) FROM kv')).rows).toEqual([[2]])
  })

  it('reuses one prepared statement per SQL text and keeps at most PREPARED_STATEMENTS_MAX of them', async () => {
    // More distinct texts than the cache holds, then the first again: every result stays right
    // whether its statement was kept or prepared anew.
    for (let i = 0; i < PREPARED_STATEMENTS_MAX + 10; i++) {
      await db.execute({ sql: `INSERT OR REPLACE INTO kv VALUES (?, NULL, ${i})`, args: [`k${i % 3}`] })
    }
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) {
        const rs = await db.execute({ sql: 'SELECT n FROM kv WHERE k = ?', args: [`k${i}`] })
        expect(rs.rows.length).toBe(1)
      }
    }
    const cache = (db as unknown as { prepared: Map<string, unknown> }).prepared
    expect(cache.size).toBeLessThanOrEqual(PREPARED_STATEMENTS_MAX)
    expect(cache.has('SELECT n FROM kv WHERE k = ?')).toBe(true)
    expect(cache.has('INSERT OR REPLACE INTO kv VALUES (?, NULL, 0)')).toBe(false)
  })

  it('refuses statements after close', async () => {
    db.close()
    expect(db.closed).toBe(true)
    await expect(db.execute('SELECT 1')).rejects.toThrow(/closed/)
    db = openConnection(join(dir, 'a.db'))
  })
})
