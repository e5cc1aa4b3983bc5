/**
 * Bearer tokens: an admin token for admin routes, namespace-scoped caller tokens for calls and
 * WebSockets. The catalog keeps only each token's SHA-256 (`token-put`/`token-delete`), so a token
 * made on one node works on every node once the catalog entry is applied there. With no token in
 * the catalog and no admin token file, auth is off (loopback dev mode); a node reachable beyond
 * loopback must be started with an admin token file (the CLI and `startMeshNode` refuse otherwise).
 * The file's token is enforced locally from startup and put into the catalog as `bootstrap-admin`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { Logger } from 'pino'
import {
  type CatalogCommand,
  type CatalogResult,
  type CatalogToken,
  type TokenScope,
  validateScope,
} from './catalog.js'
import { NamespaceNotFoundError, NodeError } from './errors.js'
import type { Access } from './gateway.js'
import type { Refusal } from './ws/index.js'

/** Catalog id of the admin token from `--admin-token-file`. */
export const BOOTSTRAP_TOKEN_ID = 'bootstrap-admin'
/** Characters of an admin token file's token, at least and at most (whitespace around is trimmed). */
export const ADMIN_TOKEN_CHARS_MIN = 32
export const ADMIN_TOKEN_CHARS_MAX = 512
/** Bytes of randomness in a token made by `POST /v1/tokens`. */
export const TOKEN_RANDOM_BYTES = 32

/** SHA-256 of a token's UTF-8 bytes, as hex: what the catalog stores. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A new token (32 random bytes, base64url, shown once) and its id. */
export function generateToken(): { id: string; token: string } {
  return {
    id: `tok_${randomBytes(8).toString('hex')}`,
    token: randomBytes(TOKEN_RANDOM_BYTES).toString('base64url'),
  }
}

/** Reads an admin token file; throws `RangeError` naming the file when it holds no usable token. */
export async function readAdminTokenFile(path: string): Promise<string> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new RangeError(`Cannot read admin token file '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`)
  }
  const token = text.trim()
  if (token.length < ADMIN_TOKEN_CHARS_MIN || token.length > ADMIN_TOKEN_CHARS_MAX || /\s/.test(token)) {
    throw new RangeError(
      `Bad admin token file '${path}': expected one token of ${ADMIN_TOKEN_CHARS_MIN}-${ADMIN_TOKEN_CHARS_MAX} non-space characters (e.g. openssl rand -base64 32)`,
    )
  }
  return token
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')
  return m?.[1]
}

/** What the authenticator reads. */
export interface AuthenticatorDeps {
  /** The catalog's tokens (read on every request: a token applied there works at once). */
  tokens: () => ReadonlyMap<string, CatalogToken>
  /** The token of `--admin-token-file`; with it, auth is on from startup. */
  adminToken?: string
}

/** Decides whether a request's bearer token may use a route. */
export class Authenticator {
  private readonly adminHash: Buffer | undefined
  /** Decoded hashes by token record (a replaced record is a new object, so never stale). */
  private readonly decoded = new WeakMap<CatalogToken, Buffer>()

  constructor(private readonly deps: AuthenticatorDeps) {
    this.adminHash =
      deps.adminToken === undefined ? undefined : Buffer.from(hashToken(deps.adminToken), 'hex')
  }

  /** Auth is on when this node has an admin token file or the catalog holds any token. */
  enabled(): boolean {
    return this.adminHash !== undefined || this.deps.tokens().size > 0
  }

  /** `undefined` when the request may go on; otherwise the 401 or 403 to answer. */
  authorize(req: IncomingMessage, access: Access): Refusal | undefined {
    if (access.kind === 'open' || !this.enabled()) return undefined
    const token = bearerToken(req)
    if (token === undefined)
      return {
        status: 401,
        code: 'ACTORMESH_UNAUTHENTICATED',
        message: 'Missing Authorization: Bearer token',
      }
    const scope = this.scopeOf(token)
    if (scope === undefined)
      return { status: 401, code: 'ACTORMESH_UNAUTHENTICATED', message: 'Unknown bearer token' }
    if (scope === 'admin') return undefined
    if (access.kind === 'namespace' && access.namespace === scope.namespace) return undefined
    const what = access.kind === 'admin' ? 'an admin route' : `namespace '${access.namespace}'`
    return {
      status: 403,
      code: 'ACTORMESH_FORBIDDEN',
      message: `A token for namespace '${scope.namespace}' cannot use ${what}`,
    }
  }

  /**
   * The scope of a token: its SHA-256 compared with the admin file's and with every catalog token's,
   * each with `timingSafeEqual` and without stopping at a match (at most `TOKENS_MAX` + 1).
   */
  private scopeOf(token: string): TokenScope | undefined {
    const hash = Buffer.from(hashToken(token), 'hex')
    let found: TokenScope | undefined
    if (this.adminHash && timingSafeEqual(this.adminHash, hash)) found = 'admin'
    for (const t of this.deps.tokens().values()) {
      const stored = this.hashOf(t)
      if (stored.length === hash.length && timingSafeEqual(stored, hash) && found === undefined)
        found = t.scope
    }
    return found
  }

  /** A catalog token's hash as bytes, decoded once per token record. */
  private hashOf(t: CatalogToken): Buffer {
    let bytes = this.decoded.get(t)
    if (!bytes) {
      bytes = Buffer.from(t.hashHex, 'hex')
      this.decoded.set(t, bytes)
    }
    return bytes
  }
}

/** What token administration needs from the node. */
export interface TokenAdminDeps {
  /** Proposes a catalog command through the `_system` leader (SystemService.submit). */
  submit: (command: CatalogCommand) => Promise<CatalogResult>
  tokens: () => ReadonlyMap<string, CatalogToken>
  namespaceExists: (name: string) => boolean
}

/** `POST/GET /v1/tokens`, `DELETE /v1/tokens/{id}`. */
export class TokenAdmin {
  constructor(private readonly deps: TokenAdminDeps) {}

  /** Makes a token for `{scope: 'admin'}` or `{namespace}`; the answer is the only time it is shown. */
  async create(body: unknown): Promise<{ id: string; token: string; scope: TokenScope }> {
    const b = (body ?? {}) as { scope?: unknown; namespace?: unknown }
    if (typeof b !== 'object' || (b.scope === undefined) === (b.namespace === undefined))
      throw new TypeError(
        `Bad token request ${JSON.stringify(body)}: give {"scope": "admin"} or {"namespace": "<name>"}`,
      )
    const scope = validateScope(b.scope !== undefined ? b.scope : { namespace: b.namespace })
    if (scope !== 'admin' && !this.deps.namespaceExists(scope.namespace))
      throw new NamespaceNotFoundError(scope.namespace)
    const { id, token } = generateToken()
    const result = await this.deps.submit({ op: 'token-put', id, hashHex: hashToken(token), scope })
    failed(result, id)
    return { id, token, scope }
  }

  /** Ids and scopes, never hashes. */
  list(): { tokens: Array<{ id: string; scope: TokenScope }> } {
    return { tokens: [...this.deps.tokens().values()].map((t) => ({ id: t.id, scope: t.scope })) }
  }

  async remove(id: string): Promise<{ deleted: string }> {
    failed(await this.deps.submit({ op: 'token-delete', id }), id)
    return { deleted: id }
  }
}

function failed(result: CatalogResult, id: string): void {
  if (result.ok) return
  if (result.code === 'not-found') throw new NodeError('ACTORMESH_TOKEN_NOT_FOUND', `No token '${id}'`, false)
  if (result.code === 'limit') throw new NodeError('ACTORMESH_TOKENS_MAX', result.message, false)
  throw new Error(result.message)
}

/** How often the bootstrap token is put into the catalog until it is there, in milliseconds. */
export const BOOTSTRAP_INTERVAL_MS = 500

/**
 * Puts the admin token file's hash into the catalog as `bootstrap-admin` once this node can reach
 * a `_system` leader, retrying every `intervalMs` until the catalog holds it; then stops. Every
 * node started with the file does this, so give every node the same file.
 */
export function keepBootstrapToken(deps: {
  adminToken: string
  submit: (command: CatalogCommand) => Promise<CatalogResult>
  tokens: () => ReadonlyMap<string, CatalogToken>
  log: Logger
  intervalMs?: number
}): { stop(): void } {
  const hashHex = hashToken(deps.adminToken)
  let busy = false
  const timer = setInterval(() => {
    if (deps.tokens().get(BOOTSTRAP_TOKEN_ID)?.hashHex === hashHex) {
      clearInterval(timer)
      deps.log.info({ id: BOOTSTRAP_TOKEN_ID }, 'admin token is in the catalog')
      return
    }
    if (busy) return
    busy = true
    deps
      .submit({ op: 'token-put', id: BOOTSTRAP_TOKEN_ID, hashHex, scope: 'admin' })
      .catch((e: unknown) => deps.log.debug({ err: String(e) }, 'cannot put the admin token yet; will retry'))
      .finally(() => {
        busy = false
      })
  }, deps.intervalMs ?? BOOTSTRAP_INTERVAL_MS)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
