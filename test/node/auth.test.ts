import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  Authenticator,
  BOOTSTRAP_TOKEN_ID,
  generateToken,
  hashToken,
  keepBootstrapToken,
  readAdminTokenFile,
  TokenAdmin,
} from '../../node/auth.js'
import {
  Catalog,
  type CatalogCommand,
  type CatalogResult,
  encodeCommand,
  TOKENS_MAX,
} from '../../node/catalog.js'

const ADMIN = 'admin-token-from-a-file-0123456789abcdef'
const req = (token?: string) =>
  ({ headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }) as IncomingMessage

/** A catalog fed through its log, as `submit` through the `_system` leader would. */
function catalogWithSubmit(): { catalog: Catalog; submit: (c: CatalogCommand) => Promise<CatalogResult> } {
  const catalog = new Catalog()
  let index = 0
  return {
    catalog,
    submit: async (c) => {
      index++
      catalog.apply([{ term: 1, index, type: 0, data: encodeCommand(c) }], '_system', index)
      return catalog.result(index)!
    },
  }
}

describe('Authenticator', () => {
  it('lets every request in while there is no token anywhere (loopback dev mode)', () => {
    const auth = new Authenticator({ tokens: () => new Map() })
    expect(auth.enabled()).toBe(false)
    expect(auth.authorize(req(), { kind: 'admin' })).toBeUndefined()
  })

  it('enforces the admin token file from startup: 401 without or with an unknown token', () => {
    const auth = new Authenticator({ tokens: () => new Map(), adminToken: ADMIN })
    expect(auth.authorize(req(), { kind: 'admin' })).toMatchObject({
      status: 401,
      code: 'ACTORMESH_UNAUTHENTICATED',
    })
    expect(auth.authorize(req('guess'), { kind: 'admin' })).toMatchObject({ status: 401 })
    expect(auth.authorize(req(ADMIN), { kind: 'admin' })).toBeUndefined()
    expect(auth.authorize(req(ADMIN), { kind: 'namespace', namespace: 'any' })).toBeUndefined()
    expect(auth.authorize(req(), { kind: 'open' })).toBeUndefined()
  })

  it('gives a namespace token its namespace only (403 elsewhere), reading the catalog live', async () => {
    const { catalog, submit } = catalogWithSubmit()
    await submit({ op: 'ns-create', name: 'chat', replicationFactor: 1, voters: ['a'] })
    const auth = new Authenticator({ tokens: () => catalog.tokens })
    const chat = 'caller-token-for-chat'
    expect(auth.authorize(req(chat), { kind: 'namespace', namespace: 'chat' })).toBeUndefined()
    await submit({ op: 'token-put', id: 't1', hashHex: hashToken(chat), scope: { namespace: 'chat' } })
    expect(auth.enabled()).toBe(true)
    expect(auth.authorize(req(chat), { kind: 'namespace', namespace: 'chat' })).toBeUndefined()
    expect(auth.authorize(req(chat), { kind: 'namespace', namespace: 'other' })).toMatchObject({
      status: 403,
      code: 'ACTORMESH_FORBIDDEN',
    })
    expect(auth.authorize(req(chat), { kind: 'admin' })).toMatchObject({ status: 403 })
    await submit({ op: 'token-delete', id: 't1' })
    expect(auth.authorize(req(chat), { kind: 'namespace', namespace: 'chat' })).toBeUndefined() // no tokens: off
  })
})

describe('tokens', () => {
  it('hashes with SHA-256 and makes 32 random bytes, base64url', () => {
    expect(hashToken('x')).toBe(createHash('sha256').update('x').digest('hex'))
    const a = generateToken()
    const b = generateToken()
    expect(Buffer.from(a.token, 'base64url')).toHaveLength(32)
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(a.id).toMatch(/^tok_[0-9a-f]{16}$/)
    expect([a.token, a.id]).not.toEqual([b.token, b.id])
  })

  it('creates, lists and deletes tokens through the catalog, storing only hashes', async () => {
    const { catalog, submit } = catalogWithSubmit()
    const sent: CatalogCommand[] = []
    const admin = new TokenAdmin({
      submit: (c) => {
        sent.push(c)
        return submit(c)
      },
      tokens: () => catalog.tokens,
      namespaceExists: (n) => n === 'chat',
    })
    const made = await admin.create({ namespace: 'chat' })
    expect(made.scope).toEqual({ namespace: 'chat' })
    expect(sent).toEqual([
      { op: 'token-put', id: made.id, hashHex: hashToken(made.token), scope: made.scope },
    ])
    expect(JSON.stringify([...catalog.tokens.values()])).not.toContain(made.token)
    const root = await admin.create({ scope: 'admin' })
    expect(admin.list()).toEqual({
      tokens: [
        { id: made.id, scope: { namespace: 'chat' } },
        { id: root.id, scope: 'admin' },
      ],
    })
    expect(await admin.remove(made.id)).toEqual({ deleted: made.id })
    await expect(admin.remove(made.id)).rejects.toMatchObject({ code: 'ACTORMESH_TOKEN_NOT_FOUND' })
    await expect(admin.create({ namespace: 'nope' })).rejects.toMatchObject({
      code: 'ACTORMESH_NAMESPACE_NOT_FOUND',
    })
    for (const bad of [{}, { scope: 'admin', namespace: 'chat' }, { scope: 'root' }, { namespace: '../x' }]) {
      await expect(admin.create(bad)).rejects.toThrow(TypeError)
    }
  })

  it(`refuses a token beyond TOKENS_MAX (${TOKENS_MAX})`, async () => {
    const { catalog, submit } = catalogWithSubmit()
    for (let i = 0; i < TOKENS_MAX; i++)
      await submit({ op: 'token-put', id: `t${i}`, hashHex: hashToken(`t${i}`), scope: 'admin' })
    const admin = new TokenAdmin({ submit, tokens: () => catalog.tokens, namespaceExists: () => true })
    await expect(admin.create({ scope: 'admin' })).rejects.toMatchObject({ code: 'ACTORMESH_TOKENS_MAX' })
    expect(catalog.tokens.size).toBe(TOKENS_MAX)
  })

  it('puts the admin token file into the catalog as bootstrap-admin, retrying until it is there', async () => {
    const { catalog, submit } = catalogWithSubmit()
    let attempts = 0
    const applied = new Promise<void>((resolve) => {
      const keeper = keepBootstrapToken({
        adminToken: ADMIN,
        tokens: () => catalog.tokens,
        log: pino({ level: 'silent' }),
        intervalMs: 5,
        submit: async (c) => {
          // The first attempt finds no _system leader, as while the node is still joining.
          if (++attempts === 1) throw Object.assign(new Error('no leader'), { code: 'ACTORMESH_NOT_LEADER' })
          const result = await submit(c)
          keeper.stop()
          resolve()
          return result
        },
      })
    })
    await applied
    expect(catalog.tokens.get(BOOTSTRAP_TOKEN_ID)).toEqual({
      id: BOOTSTRAP_TOKEN_ID,
      hashHex: hashToken(ADMIN),
      scope: 'admin',
    })
    expect(attempts).toBe(2)
  })
})

describe('readAdminTokenFile', () => {
  let dir = ''
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'am-auth-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('reads one token, trimmed; refuses a missing, short or spaced file naming it', async () => {
    const good = join(dir, 'good')
    await writeFile(good, `  ${ADMIN}\n`)
    expect(await readAdminTokenFile(good)).toBe(ADMIN)
    await expect(readAdminTokenFile(join(dir, 'missing'))).rejects.toThrow(/missing.*ENOENT/)
    for (const [name, text] of [
      ['short', 'abc'],
      ['spaced', `${ADMIN} ${ADMIN}`],
    ]) {
      await writeFile(join(dir, name!), text!)
      await expect(readAdminTokenFile(join(dir, name!))).rejects.toThrow(RangeError)
    }
  })
})
