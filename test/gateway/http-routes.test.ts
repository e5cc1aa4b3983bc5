/**
 * The gateway's route table in one process, with the node's parts faked: readiness answers, the
 * access check before routes and before `extraRoutes`, and W3C `traceparent` handling.
 */
import { type ClientRequest, type IncomingMessage, request, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { type Access, createGateway, type GatewayDeps, listen, traceContext } from '../../node/gateway.js'
import type { CallRouter } from '../../node/router.js'
import { waitFor } from '../node/wait.js'

let server: Server | undefined

afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined))
  server = undefined
})

async function gateway(overrides: Partial<GatewayDeps>): Promise<string> {
  const deps: GatewayDeps = {
    peer: 'peer-a',
    addrs: () => [],
    status: () => ({}),
    members: () => ({}),
    namespaces: () => [{ name: 'chat' }],
    createNamespace: async (name) => ({ name }),
    deleteNamespace: async (name) => ({ deleted: name }),
    removeNode: async (peer) => ({ removed: peer }),
    readiness: () => ({ ready: true, missing: [] }),
    router: {} as CallRouter,
    payloadBytesMax: 1024,
    moduleBytesMax: 1024,
    ...overrides,
  }
  server = createGateway(deps)
  return listen(server, '127.0.0.1:0')
}

describe('gateway routes', () => {
  it('answers /readyz 503 with what is missing and Retry-After, 200 once ready', async () => {
    let ready = false
    const url = await gateway({
      readiness: () => (ready ? { ready, missing: [] } : { ready, missing: ['no known leader of _system'] }),
    })
    const waiting = await fetch(`${url}/readyz`)
    expect(waiting.status).toBe(503)
    expect(waiting.headers.get('retry-after')).toBe('1')
    expect(await waiting.json()).toEqual({
      code: 'ACTORMESH_NOT_READY',
      message: 'Node is not ready: no known leader of _system',
      missing: ['no known leader of _system'],
    })
    ready = true
    expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ ready: true, peer: 'peer-a' })
  })

  it('asks for access before a route or the extra routes run; open routes and /metrics skip it', async () => {
    const asked: Access[] = []
    let extraCalled = false
    const url = await gateway({
      openRoutes: async (req, res) => {
        if (req.url !== '/metrics') return false
        res.end('# metrics\n')
        return true
      },
      authorize: (_req: IncomingMessage, access: Access) => {
        asked.push(access)
        return {
          status: 401,
          code: 'ACTORMESH_UNAUTHENTICATED',
          message: 'Missing Authorization: Bearer token',
        }
      },
      extraRoutes: async () => {
        extraCalled = true
        return false
      },
    })
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    expect(await (await fetch(`${url}/metrics`)).text()).toBe('# metrics\n')
    const ns = await fetch(`${url}/v1/namespaces/chat`)
    expect([ns.status, ns.headers.get('www-authenticate')]).toEqual([401, 'Bearer'])
    expect((await fetch(`${url}/v1/admin/catalog`)).status).toBe(401)
    expect(extraCalled).toBe(false)
    // A known path with another method is 405 without asking.
    expect((await fetch(`${url}/v1/ns/chat/module`, { method: 'POST' })).status).toBe(405)
    expect(asked).toEqual([{ kind: 'namespace', namespace: 'chat' }, { kind: 'admin' }])
  })

  it('decodes path parameters, and answers 400 for a bad percent-encoding', async () => {
    const url = await gateway({ namespaces: () => [{ name: 'a b' }] })
    expect(((await (await fetch(`${url}/v1/ns/a%20b`)).json()) as { name: string }).name).toBe('a b')
    const bad = await fetch(`${url}/v1/ns/%E0%A4%A`)
    expect([bad.status, ((await bad.json()) as { code: string }).code]).toEqual([
      400,
      'ACTORMESH_BAD_REQUEST',
    ])
  })

  it('reads a call body sent in pieces whole, refuses one over payloadBytesMax, and calls nothing for a body cut short', async () => {
    const payloads: Uint8Array[] = []
    const router = {
      call: async (call: { payload: Uint8Array }) => {
        payloads.push(call.payload)
        return { reply: new Uint8Array([1]), servedBy: 'peer-a' }
      },
    } as unknown as CallRouter
    const base = new URL(await gateway({ router, payloadBytesMax: 1024 }))
    // Bytes of each request's body the server has read so far (a listener beside the gateway's).
    const received: number[] = []
    server!.on('request', (req: IncomingMessage) => {
      const at = received.push(0) - 1
      req.on('data', (d: Buffer) => {
        received[at]! += d.byteLength
      })
    })
    const post = (length: number) =>
      request({
        host: base.hostname,
        port: base.port,
        method: 'POST',
        path: '/v1/ns/chat/actors/a/m',
        headers: { 'content-length': length },
      })
    const answer = (req: ClientRequest) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        req.on('error', reject).on('response', (res) => {
          let body = ''
          res.on('data', (d: Buffer) => {
            body += d.toString()
          })
          res.on('end', () => resolve({ status: res.statusCode!, body }))
        })
      })

    // Three pieces, each read by the server before the next is written.
    const pieces = post(9)
    const whole = answer(pieces)
    for (const [i, piece] of ['abc', 'def', 'ghi'].entries()) {
      pieces.write(piece)
      await waitFor(() => received[0] === 3 * (i + 1), `piece ${i} read`)
    }
    pieces.end()
    expect((await whole).status).toBe(200)
    expect(Buffer.from(payloads[0]!).toString()).toBe('abcdefghi')

    const big = post(2048)
    const refused = answer(big)
    big.end(Buffer.alloc(2048))
    const r = await refused
    expect([r.status, (JSON.parse(r.body) as { code: string }).code]).toEqual([
      413,
      'ACTORMESH_BODY_TOO_LARGE',
    ])

    // Announces 100 bytes, sends 10, goes away: the gateway must not call with a short payload.
    const cut = post(100)
    cut.on('error', () => {})
    cut.write(Buffer.alloc(10))
    await waitFor(() => received[2] === 10, 'the first 10 bytes read')
    cut.destroy()
    const after = await fetch(`${base.origin}/v1/ns/chat/actors/a/m`, { method: 'POST', body: 'x' })
    expect(after.status).toBe(200)
    expect(payloads.map((p) => Buffer.from(p).toString())).toEqual(['abcdefghi', 'x'])
  })
})

describe('traceContext', () => {
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736'

  it('keeps the trace id and flags and puts its own span id', () => {
    expect(traceContext(`00-${trace}-00f067aa0ba902b7-01`, 'aaaaaaaaaaaaaaaa')).toBe(
      `00-${trace}-aaaaaaaaaaaaaaaa-01`,
    )
    expect(traceContext(undefined)).toBeUndefined()
    // Without a span id given, a random one (16 hex digits, not the parent's).
    const made = traceContext(`00-${trace}-00f067aa0ba902b7-01`)
    expect(made).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`))
    expect(made).not.toContain('00f067aa0ba902b7')
    // A later version may add fields; this hop answers in version 00.
    expect(traceContext(`01-${trace}-00f067aa0ba902b7-00-extra`, 'bbbbbbbbbbbbbbbb')).toBe(
      `00-${trace}-bbbbbbbbbbbbbbbb-00`,
    )
  })

  it.each([
    ['not a traceparent'],
    [`ff-${trace}-00f067aa0ba902b7-01`],
    [`00-${trace}-00f067aa0ba902b7-01-extra`],
    [`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    [`00-${trace}-${'0'.repeat(16)}-01`],
    [`00-${trace.toUpperCase()}-00f067aa0ba902b7-01`],
  ])('refuses %j with a TypeError', (value) => {
    expect(() => traceContext(value)).toThrow(TypeError)
  })
})
