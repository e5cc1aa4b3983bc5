import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { Catalog, type CatalogCommand, encodeCommand, validateCommand } from '../../node/catalog.js'

let nextIndex = 1
function apply(catalog: Catalog, ...commands: CatalogCommand[]): number[] {
  const entries = commands.map((c) => ({
    term: 1,
    index: nextIndex++,
    type: 0 as const,
    data: encodeCommand(c),
  }))
  catalog.apply(entries, '_system', entries[entries.length - 1]!.index)
  return entries.map((e) => e.index)
}

describe('catalog state machine', () => {
  it('records nodes, namespaces, replica changes and module deploys', () => {
    const c = new Catalog()
    apply(
      c,
      { op: 'node-join', peer: 'a', addrs: ['/ip4/127.0.0.1/tcp/1'] },
      { op: 'ns-create', name: 'chat', replicationFactor: 3, voters: ['a', 'b', 'c'] },
      { op: 'ns-replicas', name: 'chat', voters: ['a', 'b', 'c'], learners: ['d'] },
      { op: 'module-deploy', name: 'chat', hash: 'ab'.repeat(32) },
    )
    expect(c.nodes.get('a')?.addrs).toEqual(['/ip4/127.0.0.1/tcp/1'])
    expect(c.namespaces.get('chat')).toMatchObject({
      voters: ['a', 'b', 'c'],
      learners: ['d'],
      moduleVersion: 1,
    })
  })

  it('refuses a duplicate namespace without changing anything, and says why', () => {
    const c = new Catalog()
    const [first, second] = apply(
      c,
      { op: 'ns-create', name: 'chat', replicationFactor: 3, voters: ['a'] },
      { op: 'ns-create', name: 'chat', replicationFactor: 5, voters: ['b'] },
    )
    expect(c.result(first!)).toEqual({ ok: true })
    expect(c.result(second!)).toMatchObject({ ok: false, code: 'exists' })
    expect(c.namespaces.get('chat')?.replicationFactor).toBe(3)
  })

  it('skips an entry that is not a command instead of throwing', () => {
    const c = new Catalog()
    c.apply([{ term: 1, index: 1, type: 0, data: new Uint8Array([0xc1]) }], '_system', 1)
    expect(c.result(1)).toMatchObject({ ok: false, code: 'invalid' })
    expect(c.appliedIndex).toBe(1)
  })

  it('round-trips through a snapshot', () => {
    const c = new Catalog()
    apply(
      c,
      { op: 'node-join', peer: 'a', addrs: [] },
      { op: 'ns-create', name: 'x', replicationFactor: 1, voters: ['a'] },
    )
    const copy = new Catalog()
    copy.applySnapshot({
      meta: { index: 9, term: 2, conf: { voters: [], learners: [] } },
      data: c.snapshot(),
    })
    expect([...copy.namespaces.values()]).toEqual([...c.namespaces.values()])
    expect([...copy.nodes.values()]).toEqual([...c.nodes.values()])
    expect(copy.appliedIndex).toBe(9)
  })
})

describe('validateCommand', () => {
  it.each([['../etc'], ['a/b'], [''], ['UPPER'], ['a'.repeat(64)], ['bad\u0000name']])(
    'refuses the namespace name %j',
    (name) => {
      expect(() => validateCommand({ op: 'ns-delete', name })).toThrow(TypeError)
    },
  )

  it('refuses a replication factor outside 1..7 and a namespace with no node', () => {
    expect(() =>
      validateCommand({ op: 'ns-create', name: 'a', replicationFactor: 0, voters: ['x'] }),
    ).toThrow(RangeError)
    expect(() => validateCommand({ op: 'ns-create', name: 'a', replicationFactor: 3, voters: [] })).toThrow(
      RangeError,
    )
  })

  it('refuses a module hash that is not SHA-256 hex', () => {
    expect(() => validateCommand({ op: 'module-deploy', name: 'a', hash: 'xyz' })).toThrow(TypeError)
  })
})

describe('catalog tokens', () => {
  const hashHex = 'ab'.repeat(32)

  it('puts, replaces and deletes tokens; a deleted namespace takes its caller tokens along', () => {
    const c = new Catalog()
    const [, , replaced, missing] = apply(
      c,
      { op: 'ns-create', name: 'chat', replicationFactor: 1, voters: ['a'] },
      { op: 'token-put', id: 'root', hashHex, scope: 'admin' },
      { op: 'token-put', id: 'root', hashHex: 'cd'.repeat(32), scope: 'admin' },
      { op: 'token-delete', id: 'nope' },
      { op: 'token-put', id: 'caller', hashHex, scope: { namespace: 'chat' } },
    )
    expect(c.result(replaced!)).toEqual({ ok: true })
    expect(c.tokens.get('root')?.hashHex).toBe('cd'.repeat(32))
    expect(c.result(missing!)).toMatchObject({ ok: false, code: 'not-found' })
    expect(c.tokens.get('caller')?.scope).toEqual({ namespace: 'chat' })
    apply(c, { op: 'ns-delete', name: 'chat' })
    expect([...c.tokens.keys()]).toEqual(['root'])
  })

  it('keeps tokens in snapshots, and reads a snapshot from before tokens as having none', () => {
    const c = new Catalog()
    apply(c, { op: 'token-put', id: 'root', hashHex, scope: 'admin' })
    const copy = new Catalog()
    const meta = { index: 3, term: 1, conf: { voters: [], learners: [] } }
    copy.applySnapshot({ meta, data: c.snapshot() })
    expect([...copy.tokens.values()]).toEqual([{ id: 'root', hashHex, scope: 'admin' }])
    const old = new Packr({ useRecords: false }).pack({ nodes: [], namespaces: [], appliedIndex: 3 })
    copy.applySnapshot({ meta, data: old })
    expect(copy.tokens.size).toBe(0)
  })

  it('validates token ids, hashes and scopes', () => {
    expect(() => validateCommand({ op: 'token-put', id: 'a b', hashHex, scope: 'admin' })).toThrow(TypeError)
    expect(() => validateCommand({ op: 'token-put', id: 'a', hashHex: 'secret', scope: 'admin' })).toThrow(
      TypeError,
    )
    for (const scope of ['root', { namespace: 'Bad/Name' }, { namespace: 'a', extra: 1 }, null]) {
      expect(() => validateCommand({ op: 'token-put', id: 'a', hashHex, scope: scope as 'admin' })).toThrow(
        TypeError,
      )
    }
    expect(() => validateCommand({ op: 'token-delete', id: '' })).toThrow(TypeError)
  })
})
