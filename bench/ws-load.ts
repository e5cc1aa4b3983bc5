/**
 * The load process of the WebSocket benchmark (`node --import tsx bench/ws-load.ts '<json config>'`),
 * its own process so that its CPU is not the nodes'. It opens `clients` WebSockets to one chat
 * room, spread round-robin over the gateways, waits until every one is ready, then posts `posts`
 * messages one at a time (every `intervalMs`, round-robin over the gateways, over HTTP) and
 * records, for each post, when its acknowledgment arrived and when each client received it — all
 * on this process's clock.
 *
 * Output, one JSON object a line on stdout: `{"event":"ready","openMs":…}` once every socket is
 * ready, then `{"event":"result",…}` (latencies in milliseconds).
 */
import { Agent, request } from 'node:http'
import WebSocket from 'ws'

export interface WsLoadConfig {
  urls: string[]
  ns: string
  actor: string
  clients: number
  /** Sockets opened at once. */
  openBatch: number
  posts: number
  intervalMs: number
  /** Give up waiting for deliveries this long after the last post. */
  drainTimeoutMs: number
}

export interface WsLoadResult {
  event: 'result'
  clients: number
  posts: number
  openMs: number
  /** Deliveries counted (clients × posts when nothing was lost). */
  deliveries: number
  missing: number
  duplicates: number
  /** Sockets the nodes closed during the run. */
  closed: number
  /** Ack → delivery at one client, over every (client, post); negative (delivered first) counts as 0. */
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Deliveries that arrived before the post's acknowledgment did. */
  beforeAck: number
  /** Ack → delivery at the last client, over posts. */
  allP50Ms: number
  allP99Ms: number
  /** Post round trip (send → ack), over posts. */
  ackP50Ms: number
  /** CPU this process used while posting and receiving, in seconds. */
  cpuS: number
}

/** What precedes a post's number in an event frame: `{"event":"{\"type\":\"post\",…,\"text\":\"b17\"…`. */
const POST_MARKER = Buffer.from('\\"text\\":\\"b')
const READY_MARKER = Buffer.from('{"ready"')

/** The post number after the marker, read from the bytes (no string is made per delivery). */
function postNumber(data: Buffer): number {
  const at = data.indexOf(POST_MARKER)
  if (at < 0) return -1
  let n = 0
  for (let i = at + POST_MARKER.length; i < data.length; i++) {
    const d = data[i]! - 48
    if (d < 0 || d > 9) break
    n = n * 10 + d
  }
  return n
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** Attempts to open one socket before the run gives up (a loaded machine resets some handshakes). */
const OPEN_ATTEMPTS_MAX = 5

/** Opens client `c`'s socket and resolves once it is ready; its deliveries go into `delivered`. */
function openOne(
  config: WsLoadConfig,
  c: number,
  delivered: Float64Array[],
  counts: Uint32Array,
): Promise<WebSocket> {
  const base = config.urls[c % config.urls.length]!.replace(/^http/, 'ws')
  const ws = new WebSocket(`${base}/v1/ns/${config.ns}/actors/${config.actor}/ws`, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
  })
  return new Promise((resolve, reject) => {
    let ready = false
    ws.once('error', reject)
    ws.on('message', (data: Buffer) => {
      const post = postNumber(data)
      if (post >= 0) {
        const row = delivered[post]
        if (!row) return
        if (row[c] === 0) row[c] = performance.now()
        else counts[1]!++
        return
      }
      if (data.subarray(0, READY_MARKER.length).equals(READY_MARKER)) {
        ready = true
        resolve(ws)
      }
    })
    ws.once('close', (code) => {
      if (ready) counts[2]!++
      reject(new Error(`socket ${c} closed with ${code}`))
    })
  })
}

async function openAll(
  config: WsLoadConfig,
  delivered: Float64Array[],
  counts: Uint32Array,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = []
  for (let i = 0; i < config.clients; i += config.openBatch) {
    const batch: Array<Promise<WebSocket>> = []
    for (let c = i; c < Math.min(config.clients, i + config.openBatch); c++) {
      batch.push(
        (async () => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await openOne(config, c, delivered, counts)
            } catch (e) {
              if (attempt >= OPEN_ATTEMPTS_MAX) throw e
              await new Promise((r) => setTimeout(r, 100 * attempt))
            }
          }
        })(),
      )
    }
    sockets.push(...(await Promise.all(batch)))
  }
  return sockets
}

function post(agent: Agent, url: string, config: WsLoadConfig, n: number): Promise<void> {
  const body = JSON.stringify({ from: 'bench', text: `b${n}` })
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/namespaces/${config.ns}/actors/${config.actor}/post`,
      {
        method: 'POST',
        agent,
        headers: { 'idempotency-key': `bench-${n}`, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume()
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`post ${n}: ${res.statusCode}`)),
        )
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

async function run(config: WsLoadConfig): Promise<WsLoadResult> {
  const delivered = Array.from({ length: config.posts }, () => new Float64Array(config.clients))
  const counts = new Uint32Array(3) // [unused, duplicates, closes]
  const opened = performance.now()
  const sockets = await openAll(config, delivered, counts)
  const openMs = performance.now() - opened
  process.stdout.write(`${JSON.stringify({ event: 'ready', openMs: Math.round(openMs) })}\n`)
  const cpu = process.cpuUsage()
  const agent = new Agent({ keepAlive: true, maxSockets: 4 })
  const sentAt = new Float64Array(config.posts)
  const ackAt = new Float64Array(config.posts)
  for (let n = 0; n < config.posts; n++) {
    const next = performance.now() + config.intervalMs
    for (let attempt = 0; ; attempt++) {
      try {
        sentAt[n] = performance.now()
        await post(agent, config.urls[n % config.urls.length]!, config, n)
        ackAt[n] = performance.now()
        break
      } catch (e) {
        if (attempt >= 20) throw e
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const wait = next - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  const deadline = performance.now() + config.drainTimeoutMs
  const complete = () => delivered.every((row) => row.every((t) => t > 0))
  while (!complete() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const closed = counts[2]!
  const used = process.cpuUsage(cpu)
  for (const ws of sockets) ws.terminate()
  agent.destroy()
  const latencies: number[] = []
  const lastPerPost: number[] = []
  let missing = 0
  let beforeAck = 0
  for (let n = 0; n < config.posts; n++) {
    let last = 0
    for (const t of delivered[n]!) {
      if (t === 0) {
        missing++
        continue
      }
      const ms = t - ackAt[n]!
      if (ms < 0) beforeAck++
      latencies.push(Math.max(0, ms))
      last = Math.max(last, ms)
    }
    lastPerPost.push(Math.max(0, last))
  }
  latencies.sort((a, b) => a - b)
  lastPerPost.sort((a, b) => a - b)
  const acks = Array.from(ackAt, (t, n) => t - sentAt[n]!).sort((a, b) => a - b)
  return {
    event: 'result',
    clients: config.clients,
    posts: config.posts,
    openMs: Math.round(openMs),
    deliveries: latencies.length,
    missing,
    duplicates: counts[1]!,
    closed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? Number.NaN,
    beforeAck,
    allP50Ms: percentile(lastPerPost, 50),
    allP99Ms: percentile(lastPerPost, 99),
    ackP50Ms: percentile(acks, 50),
    cpuS: (used.user + used.system) / 1e6,
  }
}

const config = JSON.parse(process.argv[2] ?? '{}') as WsLoadConfig
run(config).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(0)
  },
  (e: unknown) => {
    process.stderr.write(`${String((e as Error).stack ?? e)}\n`)
    process.exit(1)
  },
)
