/**
 * Noise's crypto with each session key imported once. `@libp2p/noise` seals messages of 1,200
 * bytes and more with Node's ChaCha20-Poly1305, handing `createCipheriv` the raw 32-byte key, and
 * Node imports a raw key again for every cipher: measured here, a 8,000-byte message seals in
 * ~40 µs that way and ~15 µs with a `KeyObject` made once. Our link frames are batched (up to
 * 64 KiB), so most Raft traffic takes that path, on both ends, for every message: before this, the
 * key import alone was ~6% of a node's CPU at 256 clients.
 *
 * A session's key is one `Uint8Array` that Noise keeps for the session's life, so its `KeyObject`
 * is cached in a `WeakMap` keyed by that array: it lives exactly as long as the session's key.
 * Everything else (handshake, hashing, small messages on the WebAssembly cipher, which is faster
 * there) is `@libp2p/noise`'s own default.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import type { ICryptoInterface } from '@libp2p/noise'
import { defaultCrypto } from '@libp2p/noise/crypto'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Messages at least this long use Node's cipher; shorter ones the default's WebAssembly one. */
export const nodeCipherBytesMin = 1200
const TAG_BYTES = 16
const ALGORITHM = 'chacha20-poly1305'

const keys = new WeakMap<Uint8Array, KeyObject>()

/** The `KeyObject` of session key `k`, imported the first time `k` is seen. */
export function sessionKey(k: Uint8Array): KeyObject {
  let key = keys.get(k)
  if (key === undefined) {
    key = createSecretKey(k)
    keys.set(k, key)
  }
  return key
}

function seal(
  plaintext: Uint8Array | Uint8ArrayList,
  nonce: Uint8Array,
  ad: Uint8Array,
  k: Uint8Array,
): Uint8Array {
  const cipher = createCipheriv(ALGORITHM, sessionKey(k), nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const parts =
    plaintext instanceof Uint8Array ? [cipher.update(plaintext)] : [...plaintext].map((b) => cipher.update(b))
  parts.push(cipher.final(), cipher.getAuthTag())
  return Buffer.concat(parts)
}

function open(
  ciphertext: Uint8Array | Uint8ArrayList,
  nonce: Uint8Array,
  ad: Uint8Array,
  k: Uint8Array,
): Uint8Array {
  const whole = ciphertext.subarray()
  if (whole.byteLength < TAG_BYTES)
    throw new Error('Invalid chacha20poly1305 decryption: message shorter than its tag')
  const text = whole.subarray(0, whole.byteLength - TAG_BYTES)
  const decipher = createDecipheriv(ALGORITHM, sessionKey(k), nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(ad, { plaintextLength: text.byteLength })
  decipher.setAuthTag(whole.subarray(whole.byteLength - TAG_BYTES))
  const output = decipher.update(text)
  // `final` throws when the tag does not match: a forged or corrupted message is never returned.
  const final = decipher.final()
  return final.byteLength === 0 ? output : Buffer.concat([output, final])
}

/** `@libp2p/noise`'s default crypto, with session keys imported once for Node's cipher. */
export const keyedNoiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    if (plaintext.byteLength < nodeCipherBytesMin)
      return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    return seal(plaintext, nonce, ad, k)
  },
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < nodeCipherBytesMin) {
      return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    }
    return open(ciphertext, nonce, ad, k)
  },
}
