import { noise } from '@libp2p/noise'
import { defaultCrypto } from '@libp2p/noise/crypto'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import fc from 'fast-check'
import { createLibp2p, type Libp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { afterEach, describe, expect, it } from 'vitest'
import { keyedNoiseCrypto, nodeCipherBytesMin, sessionKey } from '../../node/p2p/noise-crypto.js'
import { waitFor } from './wait.js'

const SEED = 0x6e6f6973
const started: Libp2p[] = []
afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.stop()))
})

const bytes = (list: Uint8Array | Uint8ArrayList): Uint8Array => list.subarray()

describe('keyedNoiseCrypto', () => {
  it('seals and opens interchangeably with noise’s default crypto, on both sides of the size threshold', () => {
    const key = fc.uint8Array({ minLength: 32, maxLength: 32 })
    const plaintext = fc.uint8Array({ maxLength: 3 * nodeCipherBytesMin })
    const nonce = fc.uint8Array({ minLength: 12, maxLength: 12 })
    const ad = fc.uint8Array({ maxLength: 32 })
    fc.assert(
      fc.property(key, plaintext, nonce, ad, fc.boolean(), (k, plain, n, a, asList) => {
        const half = plain.byteLength >> 1
        const input = asList ? new Uint8ArrayList(plain.subarray(0, half), plain.subarray(half)) : plain
        const ours = bytes(keyedNoiseCrypto.chaCha20Poly1305Encrypt(input, n, a, k))
        expect(Buffer.from(ours)).toEqual(
          Buffer.from(bytes(defaultCrypto.chaCha20Poly1305Encrypt(plain, n, a, k))),
        )
        expect(Buffer.from(bytes(defaultCrypto.chaCha20Poly1305Decrypt(ours, n, a, k)))).toEqual(
          Buffer.from(plain),
        )
        const listCipher = new Uint8ArrayList(ours.subarray(0, 5), ours.subarray(5))
        expect(Buffer.from(bytes(keyedNoiseCrypto.chaCha20Poly1305Decrypt(listCipher, n, a, k)))).toEqual(
          Buffer.from(plain),
        )
      }),
      { seed: SEED, numRuns: 100 },
    )
  })

  it('refuses a large message whose ciphertext, tag or associated data was changed', () => {
    const k = new Uint8Array(32).fill(1)
    const nonce = new Uint8Array(12)
    const ad = new Uint8Array(8).fill(2)
    const sealed = bytes(keyedNoiseCrypto.chaCha20Poly1305Encrypt(new Uint8Array(4000).fill(3), nonce, ad, k))
    for (const at of [0, 2000, sealed.byteLength - 1]) {
      const forged = Uint8Array.from(sealed)
      forged[at]! ^= 1
      expect(() => keyedNoiseCrypto.chaCha20Poly1305Decrypt(forged, nonce, ad, k)).toThrow()
    }
    expect(() => keyedNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, new Uint8Array(8), k)).toThrow()
    expect(() => keyedNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, new Uint8Array(32))).toThrow()
  })

  it('imports a session key once: the same key array gives the same key object, another array its own', () => {
    const k = new Uint8Array(32).fill(9)
    expect(sessionKey(k)).toBe(sessionKey(k))
    const copy = Uint8Array.from(k)
    expect(sessionKey(copy)).not.toBe(sessionKey(k))
    expect(sessionKey(copy).equals(sessionKey(k))).toBe(true)
  })

  it('carries large messages both ways between a node using it and a node on noise’s default', async () => {
    const node = async (crypto?: typeof keyedNoiseCrypto): Promise<Libp2p> => {
      const n = await createLibp2p({
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise(crypto ? { crypto } : {})],
        streamMuxers: [yamux()],
      })
      started.push(n)
      return n
    }
    const [a, b] = [await node(keyedNoiseCrypto), await node()]
    const protocol = '/test/noise-crypto/1.0.0'
    const atB: Uint8Array[] = []
    const atA: Uint8Array[] = []
    await b.handle(protocol, (stream) => {
      stream.addEventListener('message', (event) => {
        const data = event.data.subarray()
        atB.push(data)
        stream.send(data)
      })
    })
    const stream = await a.dialProtocol(b.getMultiaddrs()[0]!, protocol)
    stream.addEventListener('message', (event) => {
      atA.push(event.data.subarray())
    })
    const sent = [100, 5_000, 20_000, 60_000].map((size, i) =>
      new Uint8Array(size).map((_, j) => (j * 31 + i) & 255),
    )
    for (const message of sent) stream.send(message)
    const total = sent.reduce((sum, m) => sum + m.byteLength, 0)
    const received = (list: Uint8Array[]) => list.reduce((sum, m) => sum + m.byteLength, 0)
    await waitFor(() => received(atA) === total, 'the echoes')
    expect(Buffer.concat(atB)).toEqual(Buffer.concat(sent))
    expect(Buffer.concat(atA)).toEqual(Buffer.concat(sent))
  })
})
