import { Packr } from 'msgpackr'
import type { Entry, Snapshot, StateMachine } from '../consensus/index.js'

/** The Raft group that holds the catalog. */
export const SYSTEM_GROUP = '_system'

/** Namespace names: lower-case letters, digits, `-` and `_`, starting with a letter or digit. */
export const NAMESPACE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

/** One node as the catalog records it. */
export interface CatalogNode {
  peer: string
  addrs: string[]
  joinedIndex: number
}

/** One namespace: its replica set and deployed module. */
export interface CatalogNamespace {
  name: string
  replicationFactor: number
  voters: string[]
  learners: string[]
  /** SHA-256 of the deployed module (hex), empty before the first deploy. */
  moduleHash: string
  moduleVersion: number
  createdIndex: number
}

/** What a bearer token may do: everything, or call (and open WebSockets to) one namespace. */
export type TokenScope = 'admin' | { namespace: string }

/** A bearer token as the catalog keeps it: never the token itself, only its SHA-256. */
export interface CatalogToken {
  id: string
  /** SHA-256 of the token's UTF-8 bytes, 64 lower-case hex digits. */
  hashHex: string
  scope: TokenScope
}

/** Tokens the catalog holds at most (every request with a token compares against each). */
export const TOKENS_MAX = 1_000

/** Token ids: 1-64 of letters, digits, `-` and `_`. */
export const TOKEN_ID = /^[A-Za-z0-9_-]{1,64}$/

/** Commands of the catalog's log. Every one is validated before it is proposed. */
export type CatalogCommand =
  | { op: 'node-join'; peer: string; addrs: string[] }
  | { op: 'node-remove'; peer: string }
  | { op: 'ns-create'; name: string; replicationFactor: number; voters: string[] }
  | { op: 'ns-delete'; name: string }
  | { op: 'ns-replicas'; name: string; voters: string[]; learners: string[] }
  | { op: 'module-deploy'; name: string; hash: string }
  | { op: 'token-put'; id: string; hashHex: string; scope: TokenScope }
  | { op: 'token-delete'; id: string }

/** What applying a command did: `ok`, or why nothing changed (the proposer reports it). */
export type CatalogResult =
  | { ok: true }
  | { ok: false; code: 'exists' | 'not-found' | 'invalid' | 'limit'; message: string }

const packr = new Packr({ useRecords: false })

export function encodeCommand(command: CatalogCommand): Uint8Array {
  return packr.pack(command)
}

/**
 * The catalog state machine of the `_system` group: nodes, namespaces with their replica sets,
 * deployed module versions, and bearer tokens (hashes only). Applying is deterministic and never
 * throws on a bad command: a command that cannot apply (a duplicate name, an unknown namespace, a
 * token beyond `TOKENS_MAX`) changes nothing and records why, so every replica stays identical and
 * the proposer can tell its caller.
 */
export class Catalog implements StateMachine {
  readonly nodes = new Map<string, CatalogNode>()
  readonly namespaces = new Map<string, CatalogNamespace>()
  readonly tokens = new Map<string, CatalogToken>()
  appliedIndex = 0
  /** Results of the most recent commands by log index, for proposers (bounded). */
  private readonly results = new Map<number, CatalogResult>()

  constructor(private readonly resultsMax = 10_000) {}

  apply(entries: Entry[], _group: string, appliedIndex: number): void {
    for (const e of entries) this.record(e.index, this.applyOne(e.data, e.index))
    this.appliedIndex = appliedIndex
  }

  /** The outcome of the command at `index`, if it is still remembered. */
  result(index: number): CatalogResult | undefined {
    return this.results.get(index)
  }

  snapshot(): Uint8Array {
    return packr.pack({
      nodes: [...this.nodes.values()],
      namespaces: [...this.namespaces.values()],
      tokens: [...this.tokens.values()],
      appliedIndex: this.appliedIndex,
    })
  }

  applySnapshot(snapshot: Snapshot): void {
    const state = packr.unpack(snapshot.data) as {
      nodes: CatalogNode[]
      namespaces: CatalogNamespace[]
      /** Absent from snapshots taken before tokens existed: none. */
      tokens?: CatalogToken[]
    }
    this.nodes.clear()
    this.namespaces.clear()
    this.tokens.clear()
    for (const n of state.nodes) this.nodes.set(n.peer, n)
    for (const ns of state.namespaces) this.namespaces.set(ns.name, ns)
    for (const t of state.tokens ?? []) this.tokens.set(t.id, t)
    this.appliedIndex = snapshot.meta.index
    this.results.clear()
  }

  private record(index: number, result: CatalogResult): void {
    this.results.set(index, result)
    if (this.results.size > this.resultsMax) this.results.delete(this.results.keys().next().value!)
  }

  private applyOne(data: Uint8Array, index: number): CatalogResult {
    let c: CatalogCommand
    try {
      c = packr.unpack(data) as CatalogCommand
    } catch {
      return { ok: false, code: 'invalid', message: 'Cannot apply catalog entry: it is not msgpack' }
    }
    switch (c?.op) {
      case 'node-join':
        this.nodes.set(c.peer, {
          peer: c.peer,
          addrs: c.addrs,
          joinedIndex: this.nodes.get(c.peer)?.joinedIndex ?? index,
        })
        return { ok: true }
      case 'node-remove':
        if (!this.nodes.delete(c.peer)) return notFound(`node '${c.peer}'`)
        return { ok: true }
      case 'ns-create':
        if (this.namespaces.has(c.name))
          return { ok: false, code: 'exists', message: `Namespace '${c.name}' already exists` }
        this.namespaces.set(c.name, {
          name: c.name,
          replicationFactor: c.replicationFactor,
          voters: [...c.voters],
          learners: [],
          moduleHash: '',
          moduleVersion: 0,
          createdIndex: index,
        })
        return { ok: true }
      case 'ns-delete':
        if (!this.namespaces.delete(c.name)) return notFound(`namespace '${c.name}'`)
        // Its caller tokens go with it: a namespace created again under the name starts without any.
        for (const t of [...this.tokens.values()]) {
          if (t.scope !== 'admin' && t.scope.namespace === c.name) this.tokens.delete(t.id)
        }
        return { ok: true }
      case 'ns-replicas': {
        const ns = this.namespaces.get(c.name)
        if (!ns) return notFound(`namespace '${c.name}'`)
        ns.voters = [...c.voters]
        ns.learners = [...c.learners]
        return { ok: true }
      }
      case 'module-deploy': {
        const ns = this.namespaces.get(c.name)
        if (!ns) return notFound(`namespace '${c.name}'`)
        ns.moduleHash = c.hash
        ns.moduleVersion++
        return { ok: true }
      }
      case 'token-put':
        if (!this.tokens.has(c.id) && this.tokens.size >= TOKENS_MAX)
          return {
            ok: false,
            code: 'limit',
            message: `Cannot add token '${c.id}': ${TOKENS_MAX} tokens exist`,
          }
        this.tokens.set(c.id, { id: c.id, hashHex: c.hashHex, scope: c.scope })
        return { ok: true }
      case 'token-delete':
        if (!this.tokens.delete(c.id)) return notFound(`token '${c.id}'`)
        return { ok: true }
      default:
        return { ok: false, code: 'invalid', message: 'Cannot apply catalog entry: unknown command' }
    }
  }
}

function notFound(what: string): CatalogResult {
  return { ok: false, code: 'not-found', message: `No ${what}` }
}

/** Validates a command before it is proposed; throws `TypeError`/`RangeError` naming the problem. */
export function validateCommand(c: CatalogCommand): CatalogCommand {
  const name = 'name' in c ? c.name : undefined
  if (name !== undefined && !NAMESPACE_NAME.test(name)) {
    throw new TypeError(
      `Invalid namespace name '${name}': use 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit`,
    )
  }
  if (c.op === 'ns-create') {
    if (!Number.isInteger(c.replicationFactor) || c.replicationFactor < 1 || c.replicationFactor > 7) {
      throw new RangeError(
        `Invalid replication factor '${c.replicationFactor}' for namespace '${c.name}': use 1 to 7`,
      )
    }
    if (c.voters.length === 0)
      throw new RangeError(`Cannot create namespace '${c.name}': no live node to place it on`)
  }
  if (c.op === 'module-deploy' && !/^[0-9a-f]{64}$/.test(c.hash)) {
    throw new TypeError(`Invalid module hash '${c.hash}': expected 64 hex digits (SHA-256)`)
  }
  if ((c.op === 'token-put' || c.op === 'token-delete') && !TOKEN_ID.test(c.id))
    throw new TypeError(`Invalid token id '${c.id}': use 1-64 of A-Z, a-z, 0-9, '-' and '_'`)
  if (c.op === 'token-put') {
    if (typeof c.hashHex !== 'string' || !/^[0-9a-f]{64}$/.test(c.hashHex))
      throw new TypeError(`Invalid hash of token '${c.id}': expected 64 hex digits (SHA-256)`)
    validateScope(c.scope)
  }
  return c
}

/** Throws `TypeError` unless `scope` is `'admin'` or `{namespace}` with a valid namespace name. */
export function validateScope(scope: unknown): TokenScope {
  if (scope === 'admin') return scope
  const ns = (scope as { namespace?: unknown } | null)?.namespace
  if (
    typeof scope !== 'object' ||
    scope === null ||
    Object.keys(scope).length !== 1 ||
    typeof ns !== 'string'
  )
    throw new TypeError(
      `Invalid token scope ${JSON.stringify(scope)}: use 'admin' or {"namespace": "<name>"}`,
    )
  if (!NAMESPACE_NAME.test(ns)) throw new TypeError(`Invalid namespace name '${ns}' in a token scope`)
  return { namespace: ns }
}
