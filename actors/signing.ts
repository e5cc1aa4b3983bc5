/**
 * Signed modules: an Ed25519 signature over the SHA-256 digest of the module bytes. Signing the
 * digest (not the bytes) keeps signatures small to check for large modules, and the digest is
 * already the module's identity everywhere else.
 */
import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import { SignatureInvalidError } from './errors.js'

/** A public key as a KeyObject, a PEM string, or the 32 raw Ed25519 bytes. */
export type PublicKeyInput = KeyObject | string | Uint8Array

function digest(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest()
}

/** Turns any accepted form into a KeyObject; refuses keys that are not Ed25519. */
export function toPublicKey(input: PublicKeyInput): KeyObject {
  let key: KeyObject
  if (input instanceof Uint8Array) {
    if (input.length !== 32)
      throw new RangeError(`Bad Ed25519 public key: '${input.length}' bytes, expected 32`)
    const x = Buffer.from(input).toString('base64url')
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
  } else key = typeof input === 'string' ? createPublicKey(input) : input
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`Bad public key: type '${key.asymmetricKeyType}', expected 'ed25519'`)
  }
  return key
}

/** Signs module bytes with an Ed25519 private key (what a deploy tool does). */
export function signModule(moduleBytes: Uint8Array, privateKey: KeyObject): Uint8Array {
  return new Uint8Array(sign(null, digest(moduleBytes), privateKey))
}

/** Throws `SignatureInvalidError` unless one of `publicKeys` signed these exact bytes. */
export function verifyModuleSignature(
  namespace: string,
  moduleBytes: Uint8Array,
  signature: Uint8Array | undefined,
  publicKeys: readonly KeyObject[],
): void {
  if (!signature)
    throw new SignatureInvalidError(`Cannot deploy to namespace '${namespace}': module is unsigned`)
  const hash = digest(moduleBytes)
  if (!publicKeys.some((key) => verify(null, hash, key, signature))) {
    throw new SignatureInvalidError(
      `Cannot deploy to namespace '${namespace}': signature does not match the module and any accepted key`,
    )
  }
}
