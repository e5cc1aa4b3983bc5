import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createHost, type Host } from '../../node/p2p/host.js'
import { PeerLinks } from '../../node/p2p/links.js'
import { Channel } from '../../node/raft-transport.js'
import { Rpc, RpcError } from '../../node/rpc.js'

const log = pino({ level: 'silent' })
const peers: Array<{ host: Host; links: PeerLinks; rpc: Rpc; dir: string }> = []

async function startPeer(seeds: string[] = []) {
  const dir = await mkdtemp(join(tmpdir(), 'am-rpc-'))
  const host = await createHost({ dataDir: dir, seeds })
  let rpc: Rpc | undefined
  const links = new PeerLinks(
    host,
    (from, frame) => {
      if (frame[0] === Channel.Rpc) rpc?.receive(from, frame.subarray(1))
    },
    log,
  )
  await links.start()
  rpc = new Rpc(links, { defaultTimeoutMs: 2_000 })
  const p = { host, links, rpc, dir }
  peers.push(p)
  return p
}

afterEach(async () => {
  for (const p of peers.splice(0)) {
    p.rpc.close()
    await p.links.close()
    await p.host.stop()
    await rm(p.dir, { recursive: true, force: true })
  }
})

describe('rpc over peer links', () => {
  it('answers concurrent requests by id, and carries error codes and details back', async () => {
    const a = await startPeer()
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    b.rpc.handle('echo', async (_from, payload) => payload)
    b.rpc.handle('fail', async () => {
      throw Object.assign(new Error('Not the leader'), {
        code: 'ACTORMESH_NOT_LEADER',
        details: { leader: 'x' },
      })
    })
    const bId = b.host.peerId.toString()
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => a.rpc.request(bId, 'echo', { i })),
    )
    expect(answers).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })))
    const err = (await a.rpc.request(bId, 'fail', null).catch((e: unknown) => e)) as RpcError
    expect(err).toBeInstanceOf(RpcError)
    expect(err.code).toBe('ACTORMESH_NOT_LEADER')
    expect(err.details).toEqual({ leader: 'x' })
    const unknown = (await a.rpc.request(bId, 'nope', null).catch((e: unknown) => e)) as RpcError
    expect(unknown.code).toBe('ACTORMESH_RPC_UNKNOWN_METHOD')
  })

  it('times out a request nobody answers, and honours an abort signal', async () => {
    const a = await startPeer()
    const b = await startPeer([a.host.getMultiaddrs()[0]!.toString()])
    b.rpc.handle('hang', () => new Promise(() => {}))
    const bId = b.host.peerId.toString()
    const timedOut = (await a.rpc
      .request(bId, 'hang', null, { timeoutMs: 200 })
      .catch((e: unknown) => e)) as RpcError
    expect(timedOut.code).toBe('ACTORMESH_RPC_TIMEOUT')
    const ctrl = new AbortController()
    const p = a.rpc.request(bId, 'hang', null, { signal: ctrl.signal })
    ctrl.abort(new Error('caller gave up'))
    await expect(p).rejects.toThrow('caller gave up')
  })
})
