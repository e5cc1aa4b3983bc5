import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

/** Where a node keeps its libp2p identity inside its data directory. */
export function peerKeyPath(dataDir: string): string {
  return join(dataDir, 'peer.key')
}

/**
 * Loads the node's libp2p private key, creating an Ed25519 key on first start. The key is what
 * makes the peer id stable across restarts, so it is written atomically (temp file + rename) and
 * readable only by its owner.
 */
export async function loadOrCreatePeerKey(
  dataDir: string,
  options?: { signal?: AbortSignal },
): Promise<PrivateKey> {
  options?.signal?.throwIfAborted()
  const path = peerKeyPath(dataDir)
  try {
    const bytes = await readFile(path)
    try {
      return privateKeyFromProtobuf(new Uint8Array(bytes))
    } catch (e) {
      throw new TypeError(
        `Cannot load peer key '${path}': the file is not a libp2p private key (${String(e)})`,
      )
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
  return key
}
