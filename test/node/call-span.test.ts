/**
 * `inCallSpan` in one process: without an SDK it hands the incoming `traceparent` on untouched
 * and makes no span; once `startTracing` runs, the next hop gets this span's id in the same trace.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { inCallSpan, startTracing } from '../../node/tracing.js'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const INCOMING = `00-${TRACE}-00f067aa0ba902b7-01`
const call = (traceparent?: string) => ({
  namespace: 'ns',
  actor: 'a',
  method: 'm',
  ...(traceparent ? { traceparent } : {}),
})

describe('inCallSpan', () => {
  it('passes the incoming traceparent on unchanged while no SDK exports, and rethrows errors', async () => {
    expect(await inCallSpan('t', 'server', call(INCOMING), async (tp) => tp)).toBe(INCOMING)
    expect(await inCallSpan('t', 'server', call(), async (tp) => tp)).toBeUndefined()
    const failure = Object.assign(new Error('boom'), { code: 'ACTORMESH_X' })
    await expect(
      inCallSpan('t', 'internal', call(INCOMING), async () => {
        throw failure
      }),
    ).rejects.toBe(failure)
  })

  it('hands on its own span id in the caller’s trace while the SDK exports, and passes through again after', async () => {
    const collector = createServer((req, res) => {
      req.resume()
      req.on('end', () => res.end('{}'))
    })
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`
    const tracing = await startTracing({ endpoint, peer: 'p', log: pino({ level: 'silent' }), flushMs: 50 })
    try {
      const next = await inCallSpan('t', 'server', call(INCOMING), async (tp) => tp)
      expect(next).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`))
      expect(next).not.toBe(INCOMING)
    } finally {
      await tracing.shutdown()
      collector.close()
    }
    expect(await inCallSpan('t', 'server', call(INCOMING), async (tp) => tp)).toBe(INCOMING)
  })
})
