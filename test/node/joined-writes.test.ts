import { Socket } from 'node:net'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { joinedWritesTcp } from '../../node/p2p/joined-writes.js'
import { waitFor } from './wait.js'

const PROTOCOL = '/test/joined/1.0.0'
const started: Libp2p[] = []
const realWrite = Socket.prototype.write

afterEach(async () => {
  Socket.prototype.write = realWrite
  await Promise.all(started.splice(0).map((n) => n.stop()))
})

async function node(transport: typeof tcp): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [transport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
  started.push(n)
  return n
}

/**
 * Sends `count` messages one at a time from a to b over real libp2p (TCP, Noise, yamux) and
 * returns the byte length of every socket write made meanwhile (both ends).
 */
async function socketWrites(transport: typeof tcp, count: number): Promise<number[]> {
  const [a, b] = [await node(transport), await node(transport)]
  let received = 0
  await b.handle(PROTOCOL, (stream) => {
    stream.addEventListener('message', () => {
      received++
    })
  })
  const stream = await a.dialProtocol(b.getMultiaddrs()[0]!, PROTOCOL)
  stream.send(new Uint8Array([0]))
  await waitFor(() => received === 1, 'the first message')
  const writes: number[] = []
  Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
    writes.push((chunk as Uint8Array).byteLength)
    return (realWrite as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
  } as typeof realWrite
  for (let i = 0; i < count; i++) {
    stream.send(new Uint8Array(200).fill(i))
    await waitFor(() => received >= i + 2, `message ${i}`)
  }
  Socket.prototype.write = realWrite
  return writes
}

describe('joinedWritesTcp', () => {
  it('writes each Noise message with one socket write, where plain tcp writes its length apart', async () => {
    // The control shows what is joined: Noise's 2-byte length goes out in a write of its own.
    const plain = await socketWrites(tcp, 10)
    expect(plain.filter((n) => n === 2).length).toBeGreaterThanOrEqual(10)
    const joined = await socketWrites(joinedWritesTcp, 10)
    expect(joined.filter((n) => n === 2)).toEqual([])
    // Each 200-byte message: yamux header + Noise length and tag around it, in one write.
    expect(joined.filter((n) => n > 200).length).toBeGreaterThanOrEqual(10)
    expect(joined.length).toBeLessThan(plain.length)
  })
})
