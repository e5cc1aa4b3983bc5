/**
 * The load process of the WebSocket benchmark (`node --import tsx bench/ws-load.ts '<json config>'`),
 * its own process so that its CPU is not the nodes'. It opens `clients` WebSockets to one chat
 * room, spread round-robin over the gateways, waits until every one is ready, then posts `posts`
 * messages one at a time (every `intervalMs`, round-robin over the gateways, over HTTP) and
 * records, for each post, when its acknowledgment arrived and when each client received it — all
 * on this process's clock (`performance.timeOrigin + performance.now()`, the same in every thread).
 *
 * The sockets are held by `threads` worker threads (client `c` by thread `c % threads`), each with
 * its own event loop, so that reading ten thousand deliveries is not one thread's queue: with one
 * thread, the last client of a post waited for this process to parse the other 9,999 frames, which
 * measured the load process rather than the nodes. Delivery times go into shared memory.
 *
 * Output, one JSON object a line on stdout: `{"event":"ready","openMs":…}` once every socket is
 * ready, then `{"event":"result",…}` (latencies in milliseconds).
 */
import { Agent, request } from 'node:http'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import WebSocket from 'ws'
import { percentile, runAsScript } from './script.js'

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
  /** Worker threads holding the sockets. */
  threads: number
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
  /** CPU this process used while posting and receiving, in seconds (every thread). */
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

/** Attempts to open one socket before the run gives up (a loaded machine resets some handshakes). */
const OPEN_ATTEMPTS_MAX = 5

/** The absolute time in milliseconds, comparable across threads. */
const now = () => performance.timeOrigin + performance.now()

/**
 * What the threads share: `delivered[post * clients + c]`, the time client `c` got `post` (0: not
 * yet), and `counts` = [unused, duplicates, closes].
 */
interface Shared {
  delivered: Float64Array
  counts: Int32Array
}

function sharedViews(buffers: { delivered: SharedArrayBuffer; counts: SharedArrayBuffer }): Shared {
  return { delivered: new Float64Array(buffers.delivered), counts: new Int32Array(buffers.counts) }
}

/** Opens client `c`'s socket and resolves once it is ready; its deliveries go into `shared`. */
function openOne(config: WsLoadConfig, c: number, shared: Shared): Promise<WebSocket> {
  const { delivered, counts } = shared
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
        if (post >= config.posts) return
        const at = post * config.clients + c
        if (delivered[at] === 0) delivered[at] = now()
        else Atomics.add(counts, 1, 1)
        return
      }
      if (data.subarray(0, READY_MARKER.length).equals(READY_MARKER)) {
        ready = true
        resolve(ws)
      }
    })
    ws.once('close', (code) => {
      if (ready) Atomics.add(counts, 2, 1)
      reject(new Error(`socket ${c} closed with ${code}`))
    })
  })
}

/** Opens the sockets of thread `thread` (clients `c` with `c % threads === thread`), `openBatch / threads` at a time. */
async function openAll(
  config: WsLoadConfig,
  shared: Shared,
  thread: number,
  threads: number,
): Promise<WebSocket[]> {
  const mine: number[] = []
  for (let c = thread; c < config.clients; c += threads) mine.push(c)
  const batchSize = Math.max(1, Math.ceil(config.openBatch / threads))
  const sockets: WebSocket[] = []
  for (let i = 0; i < mine.length; i += batchSize) {
    const batch: Array<Promise<WebSocket>> = []
    for (const c of mine.slice(i, i + batchSize)) {
      batch.push(
        (async () => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await openOne(config, c, shared)
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

/** A worker thread: opens its sockets, says `ready`, and closes them when told `stop`. */
async function runThread(): Promise<void> {
  const { config, buffers, thread, threads } = workerData as {
    config: WsLoadConfig
    buffers: { delivered: SharedArrayBuffer; counts: SharedArrayBuffer }
    thread: number
    threads: number
  }
  const sockets = await openAll(config, sharedViews(buffers), thread, threads)
  parentPort!.on('message', (m) => {
    if (m !== 'stop') return
    for (const ws of sockets) ws.terminate()
    parentPort!.close()
  })
  parentPort!.postMessage('ready')
}

/** Starts the threads and resolves once every one has its sockets open; a thread's failure rejects. */
async function startThreads(config: WsLoadConfig, buffers: Shared, threads: number): Promise<Worker[]> {
  const workers = Array.from(
    { length: threads },
    (_, thread) =>
      new Worker(new URL(import.meta.url), {
        workerData: {
          config,
          buffers: { delivered: buffers.delivered.buffer, counts: buffers.counts.buffer },
          thread,
          threads,
        },
      }),
  )
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.once('message', () => resolve())
          w.once('error', reject)
          w.once('exit', (code) =>
            reject(new Error(`a socket thread exited with ${code} before it was ready`)),
          )
        }),
    ),
  )
  return workers
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
  const threads = Math.max(1, config.threads)
  const shared = sharedViews({
    delivered: new SharedArrayBuffer(config.posts * config.clients * Float64Array.BYTES_PER_ELEMENT),
    counts: new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT),
  })
  const { delivered, counts } = shared
  const opened = performance.now()
  const workers = await startThreads(config, shared, threads)
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
        sentAt[n] = now()
        await post(agent, config.urls[n % config.urls.length]!, config, n)
        ackAt[n] = now()
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
  const complete = () => delivered.every((t) => t > 0)
  while (!complete() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const closed = Atomics.load(counts, 2)
  const used = process.cpuUsage(cpu)
  await Promise.all(
    workers.map((w) => {
      const exited = new Promise((r) => w.once('exit', r))
      w.postMessage('stop')
      return exited
    }),
  )
  agent.destroy()
  const latencies: number[] = []
  const lastPerPost: number[] = []
  let missing = 0
  let beforeAck = 0
  for (let n = 0; n < config.posts; n++) {
    let last = 0
    for (const t of delivered.subarray(n * config.clients, (n + 1) * config.clients)) {
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
    duplicates: Atomics.load(counts, 1),
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

if (!isMainThread) {
  runThread().catch((e: unknown) => {
    process.stderr.write(`${String((e as Error).stack ?? e)}\n`)
    process.exit(1)
  })
} else runAsScript(run)
