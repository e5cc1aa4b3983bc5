/**
 * HTTP helpers for tests that call actors on a process cluster: create a namespace, deploy a
 * module, call with retries on the retryable (503) answers.
 */
import { type ClusterNode, getJson, type NamespaceView, waitFor } from './cluster.js'

export interface CallAnswer {
  status: number
  body: string
  servedBy: string
  replayed: boolean
  code?: string
}

/** One call over HTTP, no retry. */
export async function callOnce(
  node: ClusterNode,
  ns: string,
  actor: string,
  method: string,
  payload = '',
  options: { consistency?: 'stale'; key?: string; timeoutMs?: number } = {},
): Promise<CallAnswer> {
  const q = options.consistency ? `?consistency=${options.consistency}` : ''
  const res = await fetch(
    `${node.url}/v1/namespaces/${ns}/actors/${encodeURIComponent(actor)}/${method}${q}`,
    {
      method: 'POST',
      body: payload,
      headers: options.key ? { 'idempotency-key': options.key } : {},
      signal: AbortSignal.timeout(options.timeoutMs ?? 20_000),
    },
  )
  const body = await res.text()
  let code: string | undefined
  if (res.status !== 200) code = (JSON.parse(body) as { code?: string }).code
  return {
    status: res.status,
    body,
    servedBy: res.headers.get('x-actormesh-served-by') ?? '',
    replayed: res.headers.get('x-actormesh-replayed') === 'true',
    ...(code ? { code } : {}),
  }
}

/** A call retried on 503 answers until it succeeds (other failures throw). */
export async function call(
  node: ClusterNode,
  ns: string,
  actor: string,
  method: string,
  payload = '',
  options: { consistency?: 'stale'; key?: string } = {},
): Promise<CallAnswer> {
  return waitFor(
    async () => {
      const a = await callOnce(node, ns, actor, method, payload, options)
      if (a.status === 200) return a
      if (a.status !== 503) throw new Error(`call ${method} on ${actor} failed: ${a.status} ${a.body}`)
      return undefined
    },
    () => `${method} on ${actor} via ${node.url} to succeed`,
    60_000,
  )
}

/** Creates a namespace (retrying until the cluster can place it) and waits for its leader. */
export async function createNamespace(
  node: ClusterNode,
  name: string,
  replicationFactor = 3,
): Promise<NamespaceView> {
  // Placement picks live `_system` members: created while nodes are still joining, a namespace gets
  // fewer replicas and waits for repair. Wait until enough nodes vote in `_system`.
  await waitFor(
    async () =>
      ((await getJson(`${node.url}/v1/status`)) as { system: { voters: string[] } }).system.voters.length >=
      replicationFactor,
    () => `${replicationFactor} _system voters before creating ${name}`,
    60_000,
  )
  await waitFor(
    async () => {
      const res = await fetch(`${node.url}/v1/namespaces`, {
        method: 'POST',
        body: JSON.stringify({ name, replicationFactor }),
      })
      return res.status === 201 || res.status === 409
    },
    () => `namespace ${name} to be created`,
    60_000,
  )
  return waitFor(
    async () => {
      const list = (await getJson(`${node.url}/v1/namespaces`)) as { namespaces: NamespaceView[] }
      const ns = list.namespaces.find((n) => n.name === name)
      return ns && ns.voters.length === replicationFactor ? ns : undefined
    },
    () => `namespace ${name} to show ${replicationFactor} replicas`,
    60_000,
  )
}

/** Deploys a module through `node`, retrying while the namespace has no leader yet. */
export async function deploy(node: ClusterNode, name: string, bytes: Uint8Array): Promise<{ hash: string }> {
  return waitFor(
    async () => {
      const res = await fetch(`${node.url}/v1/namespaces/${name}/module`, {
        method: 'PUT',
        body: bytes,
        signal: AbortSignal.timeout(30_000),
      })
      if (res.status === 200) return (await res.json()) as { hash: string }
      if (res.status !== 503) throw new Error(`deploy to ${name} failed: ${res.status} ${await res.text()}`)
      return undefined
    },
    () => `module deploy to ${name}`,
    60_000,
  )
}
