/**
 * `actormesh deploy NAME FILE.wasm [--capabilities a,b] [--sign KEYFILE]`: puts a module on a
 * namespace through its leader (replicated through the namespace's log).
 *
 * `--sign` signs the module as actors/signing.ts defines (Ed25519 over the SHA-256 of the bytes,
 * with a key from `actormesh keygen`) and sends the signature base64-encoded in the
 * `x-actormesh-signature` header. A node started with `--deploy-key` accepts only modules signed
 * by one of its keys; without, the signature is recorded with the module.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, verify } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { abiImports, signModule } from '../../actors/index.js'
import { type CliIo, COMMON_FLAGS_HELP, type Command } from './command.js'
import { UsageError } from './errors.js'
import { NODE_FLAGS_HELP, nodeJson, nodeOptions, nodeTarget, nsPaths } from './http.js'
import { commandOptions, type OptionSpec, str } from './options.js'

/** The header a signed deploy carries its signature in (base64). */
export const SIGNATURE_HEADER = 'x-actormesh-signature'

const help = `Usage: actormesh deploy NAME FILE.wasm [--capabilities a,b] [--sign KEYFILE]

Deploys a module to namespace NAME through its leader; every replica switches to it once the
deploy entry commits. Deploying the running module again is a no-op.

Flags:
  --capabilities LIST   imports the namespace grants, comma-separated (default: all of ABI v1)
                        [ACTORMESH_CAPABILITIES]: ${abiImports.join(',')}
  --sign KEYFILE        sign with an Ed25519 key from 'actormesh keygen' (PEM) [ACTORMESH_SIGN]
${NODE_FLAGS_HELP}
${COMMON_FLAGS_HELP}
`

const options: Record<string, OptionSpec> = {
  ...nodeOptions,
  capabilities: { type: 'string' },
  sign: { type: 'string' },
}

/** `actormesh deploy`. */
export const deployCommand: Command = {
  name: 'deploy',
  help,
  async run(argv: string[], io: CliIo): Promise<void> {
    const o = commandOptions(argv, options, io, help, { positionals: true })
    if (!o) return
    if (o.positionals.length !== 2) throw new UsageError('deploy needs NAME and FILE.wasm')
    const [name, file] = o.positionals as [string, string]
    const caps = capabilities(str(o, 'capabilities'))
    const bytes = await readModule(file)
    const keyFile = str(o, 'sign')
    const signature = keyFile ? signWith(await loadSigningKey(keyFile), bytes) : undefined
    const query = caps ? `?capabilities=${caps.map(encodeURIComponent).join(',')}` : ''
    const [current, older] = nsPaths(name, '/module')
    const deployed = await nodeJson<{ version?: number; hash?: string }>(nodeTarget(o), {
      method: 'PUT',
      path: [`${current}${query}`, `${older}${query}`],
      headers: {
        'content-type': 'application/wasm',
        ...(signature ? { [SIGNATURE_HEADER]: signature.base64 } : {}),
      },
      body: bytes,
    })
    io.out.write(
      `Deployed ${file} to '${name}': version ${deployed.version ?? '?'}, sha256 ${deployed.hash ?? sha256(bytes)}\n`,
    )
    if (signature) io.out.write(`Signed with Ed25519 public key ${signature.publicKey}\n`)
  },
}

/** `--capabilities` as a list, each one checked against ABI v1's imports. */
function capabilities(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined
  const list = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const bad = list.find((c) => !(abiImports as readonly string[]).includes(c))
  if (bad !== undefined)
    throw new UsageError(
      `Invalid capability '${bad}' in --capabilities: expected some of ${abiImports.join(', ')}`,
    )
  return list
}

async function readModule(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(file))
  } catch (e) {
    throw new UsageError(`Cannot read module '${file}': ${(e as Error).message}`)
  }
  // "\0asm": a file that is not WebAssembly at all is caught here rather than by the node.
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d)
    throw new UsageError(`Cannot deploy '${file}': not a WebAssembly module (build one with actormesh build)`)
  return bytes
}

/** A PEM Ed25519 private key as `actormesh keygen` writes it. */
export async function loadSigningKey(file: string): Promise<KeyObject> {
  let key: KeyObject
  try {
    key = createPrivateKey(await readFile(file, 'utf8'))
  } catch (e) {
    throw new UsageError(`Cannot read signing key '${file}': ${(e as Error).message}`)
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new UsageError(
      `Cannot sign with '${file}': key type '${key.asymmetricKeyType}', expected 'ed25519'`,
    )
  return key
}

/** The module's signature and the signer's raw public key, both base64. */
function signWith(key: KeyObject, bytes: Uint8Array): { base64: string; publicKey: string } {
  const signature = signModule(bytes, key)
  const pub = createPublicKey(key)
  // Pair assertion: the signature checks against the public key as the runtime would check it.
  const digest = createHash('sha256').update(bytes).digest()
  if (!verify(null, digest, pub, signature))
    throw new Error('Assertion failed: a fresh signature does not verify')
  return { base64: Buffer.from(signature).toString('base64'), publicKey: rawPublicKey(pub) }
}

/** The 32 raw bytes of an Ed25519 public key, base64 (what `toPublicKey` accepts as bytes). */
export function rawPublicKey(pub: KeyObject): string {
  const jwk = pub.export({ format: 'jwk' }) as { x?: string }
  return Buffer.from(jwk.x ?? '', 'base64url').toString('base64')
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
