/**
 * `actormesh keygen [--out FILE]`: an Ed25519 module-signing key for `deploy --sign` (PKCS#8 PEM,
 * as node:crypto's `createPrivateKey` reads it; the public key as SPKI PEM beside it).
 * `actormesh keygen --cluster-key [--out FILE]`: a libp2p pre-shared key for `start --cluster-key`,
 * in the text format `@libp2p/pnet` reads.
 */
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { rawPublicKey } from './deploy.js'
import { UsageError } from './errors.js'
import { bool, commandOptions, type OptionSpec, str } from './options.js'

/** Bytes of a pnet key file: its three lines (header, encoding, 64 hex digits). */
const CLUSTER_KEY_BYTES = 95

const help = `Usage:
  actormesh keygen [--out FILE]                 an Ed25519 key for 'deploy --sign'
  actormesh keygen --cluster-key [--out FILE]   a pre-shared cluster key for 'start --cluster-key'

With --out, the private key goes to FILE (mode 0600; an existing FILE is never overwritten) and,
for a signing key, the public key to FILE.pub; without it, the key is printed on stdout.

Flags:
  --out FILE            where to write the key
  --cluster-key         a libp2p pnet key (every node of a cluster needs the same file)
${COMMON_FLAGS_HELP}
`

const options: Record<string, OptionSpec> = {
  out: { type: 'string', env: null },
  'cluster-key': { type: 'boolean', env: null },
}

/** `actormesh keygen`. */
export const keygenCommand: Command = {
  name: 'keygen',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help, { positionals: true })
    if (!o) return
    if (o.positionals.length > 0) throw new UsageError(`Unexpected argument '${o.positionals[0]}' for keygen`)
    const out = str(o, 'out')
    if (bool(o, 'cluster-key')) {
      const key = new Uint8Array(CLUSTER_KEY_BYTES)
      generateKey(key)
      if (!out) return void io.out.write(key)
      await writeNew(out, key)
      io.out.write(`Wrote cluster key ${out}: give it to every node with --cluster-key ${out}\n`)
      return
    }
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    const pubPem = publicKey.export({ type: 'spki', format: 'pem' }) as string
    const raw = rawPublicKey(publicKey)
    if (!out) {
      io.out.write(pem)
      io.err.write(`public key (raw, base64): ${raw}\n`)
      return
    }
    await writeNew(out, pem)
    await writeNew(`${out}.pub`, pubPem, 0o644)
    io.out.write(
      `Wrote signing key ${out} and public key ${out}.pub\npublic key (raw, base64): ${raw}\nsign a deploy with: actormesh deploy NAME FILE.wasm --sign ${out}\n`,
    )
  },
}

/** Writes a new file; an existing one is a usage error (a key is never overwritten). */
async function writeNew(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  try {
    await writeFile(path, data, { flag: 'wx', mode })
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST')
      throw new UsageError(`Cannot write key '${path}': the file exists (keys are never overwritten)`)
    throw new Error(`Cannot write key '${path}': ${(e as Error).message}`)
  }
}
