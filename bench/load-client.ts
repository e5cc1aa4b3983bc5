/**
 * The load generator of the cluster benchmark, run as its own process so that its CPU is not the
 * nodes' (`node --import tsx bench/load-client.ts '<json config>'`, or the config as the first line
 * of stdin). `concurrency` clients each loop: pick an actor with a seeded PRNG, send the call to a
 * gateway (round-robin over `targets`, or straight to the namespace's leader), retry 503 answers,
 * and record the latency of the successful call from its first attempt. With `transport: 'etcd'` the
 * same loop writes to an etcd cluster instead (the comparison run, bench/etcd.ts): each call is a
 * `POST /v3/kv/put` to etcd's HTTP gateway with the actor's key `<namespace>/a<i>` and `payload` as
 * the value (both base64, as the gateway's JSON wants), round-robin over the members; with
 * `transport: 'etcd-grpc'` each call is the same put over etcd's native gRPC API (bench/grpc.ts),
 * an Unavailable status retried as a 503 is.
 *
 * Output, one JSON object a line on stdout: `{"event":"window","acked":n}` when the warm-up ends,
 * `{"event":"ready"}` once `readyAcks` calls were acknowledged, `{"event":"mark",...}` after a
 * mark (below), and last `{"event":"result",...}`.
 * Commands, one JSON object a line on stdin: `{"cmd":"mark","atMs":<epoch ms>}` asks for the time
 * from that instant to the first acknowledged call sent at or after it (the failover figure);
 * `{"cmd":"stop"}` ends the run. The client also stops when stdin closes (its parent is gone).
 */
import { Agent, request } from 'node:http'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { seededRandom } from '../test/consensus/harness.js'
import { ETCD_PUT_PATH, etcdPutFrame, GRPC_OK, GRPC_UNAVAILABLE, GrpcChannels } from './grpc.js'

/** What one run of the load client does. */
export interface LoadConfig {
  /** Gateways to send to; `peer` is the node's peer id (leader-direct routing maps leaders to URLs). */
  targets: Array<{ url: string; peer: string }>
  namespaces: string[]
  /** Actors `a0 … a<actors-1>`; actor i lives in namespace i mod namespaces.length. */
  actors: number
  concurrency: number
  /** Measured window after the warm-up; 0 runs until a stop command. */
  durationMs: number
  /** Calls acknowledged in this first window are not counted. */
  warmupMs: number
  method: string
  payload: string
  seed: number
  /** `round-robin`: every call to the next target; `leader`: to the namespace's leader. */
  route: 'round-robin' | 'leader'
  /** Namespace → leader peer at start (`leader` routing; answers' served-by header keeps it current). */
  leaders: Record<string, string>
  /**
   * `http`/`fetch`: ActorMesh calls with node:http or fetch; `etcd`: etcd 3.4+ puts to its HTTP
   * gateway with node:http; `etcd-grpc`: the same puts over gRPC (HTTP/2, one connection a member).
   */
  transport: 'http' | 'fetch' | 'etcd' | 'etcd-grpc'
  /** Pause before retrying a 503 or after a failed call. */
  retryDelayMs: number
  /** One attempt gives up after this long (counted as an error). */
  attemptTimeoutMs: number
  /** Print `{"event":"ready"}` after this many acknowledged calls (0: never). */
  readyAcks: number
}

/** The result line. Latencies in milliseconds. */
export interface LoadResult {
  event: 'result'
  seed: number
  transport: string
  concurrency: number
  windowMs: number
  ops: number
  opsPerS: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  /** Calls acknowledged over the whole run, warm-up and drain included. */
  acked: number
  /** CPU this load-client process used per acknowledged call over the whole run, in microseconds. */
  clientCpuUsPerCall: number
  /** Attempts answered 503 and retried (whole run), and how many of them by error code. */
  retries: number
  retriesBy: Record<string, number>
  /** Calls that failed otherwise (whole run), by HTTP status and error code, `network <code>` or `timeout`. */
  errors: number
  errorsBy: Record<string, number>
}

/** Outcome of one attempt. */
interface Answer {
  status: number
  servedBy: string
  /** The error body of an answer other than 200 (its `code` names the failure). */
  errorBody?: string
}

/** Sub-buckets per power of two are 2^(this - 1): relative error under 1/64. */
const SUB_BUCKET_BITS = 7
/** Largest latency the histogram holds, in microseconds (about 36 minutes; larger ones are clamped). */
const LATENCY_US_MAX = 2 ** 31 - 1
/** Acknowledged calls remembered for a mark that arrives after the acks it is about. */
const RECENT_ACKS_MAX = 4_096

/** A log-linear latency histogram over whole microseconds, bounded in size (HdrHistogram's layout). */
export class LatencyHistogram {
  private readonly counts: Float64Array
  count = 0
  maxUs = 0

  constructor() {
    this.counts = new Float64Array(bucketOf(LATENCY_US_MAX) + 1)
  }

  record(ms: number): void {
    const us = Math.min(LATENCY_US_MAX, Math.max(0, Math.round(ms * 1_000)))
    this.counts[bucketOf(us)]!++
    this.count++
    if (us > this.maxUs) this.maxUs = us
  }

  /** The value at quantile `q` (0..1) in milliseconds: the upper edge of its bucket, at most the max. */
  quantileMs(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(bucketUpperUs(i), this.maxUs) / 1_000
    }
    return this.maxUs / 1_000
  }
}

/**
 * Values below 2^SUB_BUCKET_BITS have a bucket each; above, each power of two [2^e, 2^(e+1)) is
 * split into 2^(SUB_BUCKET_BITS-1) equal buckets.
 */
function bucketOf(us: number): number {
  const sub = 2 ** SUB_BUCKET_BITS
  if (us < sub) return us
  const half = sub / 2
  const e = 31 - Math.clz32(us)
  const shift = e - SUB_BUCKET_BITS + 1
  const mantissa = Math.floor(us / 2 ** shift) // in [half, sub)
  return sub + (e - SUB_BUCKET_BITS) * half + (mantissa - half)
}

/** The largest value that falls in `bucket`. */
function bucketUpperUs(bucket: number): number {
  const sub = 2 ** SUB_BUCKET_BITS
  if (bucket < sub) return bucket
  const half = sub / 2
  const k = bucket - sub
  const shift = Math.floor(k / half) + 1
  const mantissa = half + (k % half)
  return (mantissa + 1) * 2 ** shift - 1
}

/** The `code` of a gateway error body (etcd's gateway: `grpc <number>`), or '' when it has none. */
function errorCode(body: string | undefined): string {
  try {
    const code = (JSON.parse(body ?? '') as { code?: unknown }).code
    if (typeof code === 'number') return `grpc ${code}`
    return typeof code === 'string' ? code : ''
  } catch {
    return ''
  }
}

const epochMs = (): number => performance.timeOrigin + performance.now()

function sendHttp(agent: Agent, url: URL, body: Buffer, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-length': body.length }, timeout: timeoutMs },
      (res) => {
        const status = res.statusCode ?? 0
        let errorBody = ''
        res.on('data', (d: Buffer) => {
          if (status !== 200 && errorBody.length < 4_096) errorBody += d.toString()
        })
        res.on('end', () =>
          resolve({
            status,
            servedBy: String(res.headers['x-actormesh-served-by'] ?? ''),
            ...(status !== 200 ? { errorBody } : {}),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(Object.assign(new Error('attempt timed out'), { code: 'TIMEOUT' })))
    req.on('error', reject)
    req.end(body)
  })
}

async function sendFetch(url: URL, body: Buffer, timeoutMs: number): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', body, signal: AbortSignal.timeout(timeoutMs) })
  const servedBy = res.headers.get('x-actormesh-served-by') ?? ''
  if (res.status !== 200) return { status: res.status, servedBy, errorBody: await res.text() }
  await res.arrayBuffer()
  return { status: res.status, servedBy }
}

/** A gRPC put as an HTTP-like answer: OK is 200, Unavailable 503 (retried), others 500; `code` its status. */
async function sendGrpc(channels: GrpcChannels, url: URL, body: Buffer, timeoutMs: number): Promise<Answer> {
  const a = await channels.unary(url.origin, url.pathname, body, timeoutMs)
  if (a.status === GRPC_OK) return { status: 200, servedBy: '' }
  const status = a.status === GRPC_UNAVAILABLE ? 503 : 500
  return { status, servedBy: '', errorBody: JSON.stringify({ code: a.status, message: a.message }) }
}

/** What one call sends: its namespace, the URL path and the request body. */
interface Pick {
  ns: string
  path: string
  body: Buffer
}

/**
 * The call of each actor, built once: actor i lives in namespace i mod the namespaces. For etcd's
 * gateway the actor's key and the payload go base64 in a JSON body (it maps bytes fields so); for
 * gRPC they go in a protobuf `PutRequest`.
 */
function picksOf(config: LoadConfig): Pick[] {
  const body = Buffer.from(config.payload)
  const value = body.toString('base64')
  return Array.from({ length: config.actors }, (_, i) => {
    const ns = config.namespaces[i % config.namespaces.length]!
    if (config.transport === 'etcd-grpc')
      return { ns, path: ETCD_PUT_PATH, body: etcdPutFrame(`${ns}/a${i}`, config.payload) }
    if (config.transport !== 'etcd')
      return { ns, path: `/v1/namespaces/${ns}/actors/a${i}/${config.method}`, body }
    const key = Buffer.from(`${ns}/a${i}`).toString('base64')
    return { ns, path: '/v3/kv/put', body: Buffer.from(JSON.stringify({ key, value })) }
  })
}

/** Runs the load described by `config`; `control` delivers stdin commands. */
export async function runLoad(
  config: LoadConfig,
  emit: (line: object) => void,
  control: { onCommand: (handler: (cmd: { cmd: string; atMs?: number }) => void) => void },
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: config.concurrency })
  const channels = new GrpcChannels()
  const urlOf = new Map(config.targets.map((t) => [t.peer, t.url]))
  const leaders = new Map(Object.entries(config.leaders))
  const picks = picksOf(config)
  const hist = new LatencyHistogram()
  const errorsBy: Record<string, number> = {}
  let errors = 0
  let retries = 0
  const retriesBy: Record<string, number> = {}
  let acked = 0
  let stop = false
  let nextTarget = 0
  const startMs = performance.now()
  const cpuAtStart = process.cpuUsage()
  const windowStart = startMs + config.warmupMs
  let windowEnd = config.durationMs > 0 ? windowStart + config.durationMs : Number.POSITIVE_INFINITY
  let ops = 0

  // Failover marks: the first ack of an attempt sent at or after `mark.atMs` (epoch ms).
  const recent: Array<{ sentAt: number; ackAt: number }> = []
  let mark: { atMs: number } | undefined
  const settleMark = (sentAt: number, ackAt: number) => {
    if (mark === undefined || sentAt < mark.atMs) return
    emit({ event: 'mark', atMs: mark.atMs, firstAckMs: ackAt - mark.atMs })
    mark = undefined
  }
  control.onCommand((c) => {
    if (c.cmd === 'stop') {
      stop = true
      windowEnd = Math.min(windowEnd, performance.now())
    } else if (c.cmd === 'mark' && typeof c.atMs === 'number') {
      const atMs = c.atMs
      mark = { atMs }
      const first = recent.filter((r) => r.sentAt >= atMs).sort((a, b) => a.ackAt - b.ackAt)[0]
      if (first) settleMark(first.sentAt, first.ackAt)
    }
  })
  const windowTimer = setTimeout(() => emit({ event: 'window', acked }), config.warmupMs)
  const stopTimer =
    config.durationMs > 0
      ? setTimeout(() => {
          stop = true
        }, config.warmupMs + config.durationMs)
      : undefined

  const targetFor = (ns: string, attempt: number): string => {
    if (config.route === 'leader' && attempt === 0) {
      const url = urlOf.get(leaders.get(ns) ?? '')
      if (url) return url
    }
    return config.targets[nextTarget++ % config.targets.length]!.url
  }
  const attempt = (url: URL, body: Buffer): Promise<Answer> =>
    config.transport === 'fetch'
      ? sendFetch(url, body, config.attemptTimeoutMs)
      : config.transport === 'etcd-grpc'
        ? sendGrpc(channels, url, body, config.attemptTimeoutMs)
        : sendHttp(agent, url, body, config.attemptTimeoutMs)
  const fail = (kind: string) => {
    errors++
    errorsBy[kind] = (errorsBy[kind] ?? 0) + 1
  }

  /** One call: attempts until an answer other than 503 (or the run stops). */
  const call = async (pick: Pick): Promise<void> => {
    const firstSent = performance.now()
    for (let n = 0; !stop || n === 0; n++) {
      const sentAt = epochMs()
      let answer: Answer
      try {
        answer = await attempt(new URL(pick.path, targetFor(pick.ns, n)), pick.body)
      } catch (e) {
        const code = (e as { code?: string }).code
        fail(code === 'TIMEOUT' || (e as Error).name === 'TimeoutError' ? 'timeout' : `network ${code ?? ''}`)
        await new Promise((r) => setTimeout(r, config.retryDelayMs))
        return
      }
      if (answer.status === 200) {
        const now = performance.now()
        const ackAt = epochMs()
        acked++
        if (now >= windowStart && now <= windowEnd) {
          ops++
          hist.record(now - firstSent)
        }
        if (answer.servedBy) leaders.set(pick.ns, answer.servedBy)
        recent.push({ sentAt, ackAt })
        if (recent.length > RECENT_ACKS_MAX) recent.splice(0, recent.length - RECENT_ACKS_MAX / 2)
        settleMark(sentAt, ackAt)
        if (acked === config.readyAcks) emit({ event: 'ready' })
        return
      }
      if (answer.status !== 503) {
        fail(`${answer.status} ${errorCode(answer.errorBody)}`)
        await new Promise((r) => setTimeout(r, config.retryDelayMs))
        return
      }
      retries++
      const code = errorCode(answer.errorBody)
      retriesBy[code] = (retriesBy[code] ?? 0) + 1
      await new Promise((r) => setTimeout(r, config.retryDelayMs))
    }
  }

  const client = async (index: number): Promise<void> => {
    const random = seededRandom(config.seed + index)
    while (!stop) await call(picks[random(picks.length)]!)
  }
  await Promise.all(Array.from({ length: config.concurrency }, (_, i) => client(i)))
  clearTimeout(windowTimer)
  if (stopTimer) clearTimeout(stopTimer)
  agent.destroy()
  channels.close()
  const windowMs = Math.min(windowEnd, performance.now()) - windowStart
  const cpu = process.cpuUsage(cpuAtStart)
  return {
    event: 'result',
    seed: config.seed,
    transport: config.transport,
    concurrency: config.concurrency,
    windowMs: Math.round(windowMs),
    ops,
    acked,
    opsPerS: windowMs > 0 ? (ops * 1_000) / windowMs : 0,
    p50Ms: hist.quantileMs(0.5),
    p90Ms: hist.quantileMs(0.9),
    p99Ms: hist.quantileMs(0.99),
    maxMs: hist.maxUs / 1_000,
    clientCpuUsPerCall: acked > 0 ? (cpu.user + cpu.system) / acked : 0,
    retries,
    retriesBy,
    errors,
    errorsBy,
  }
}

/** Defaults for what the caller leaves out. */
export function loadConfig(given: Partial<LoadConfig>): LoadConfig {
  const c: LoadConfig = {
    targets: [],
    namespaces: [],
    actors: 1_000,
    concurrency: 256,
    durationMs: 10_000,
    warmupMs: 3_000,
    method: 'increment',
    payload: '',
    seed: 1,
    route: 'round-robin',
    leaders: {},
    transport: 'http',
    retryDelayMs: 10,
    attemptTimeoutMs: 30_000,
    readyAcks: 0,
    ...given,
  }
  if (c.targets.length === 0) throw new RangeError('Bad load config: no targets')
  if (c.namespaces.length === 0) throw new RangeError('Bad load config: no namespaces')
  if (!Number.isInteger(c.actors) || c.actors < c.namespaces.length)
    throw new RangeError(`Bad load config: actors '${c.actors}' must be a whole number >= the namespaces`)
  if (!Number.isInteger(c.concurrency) || c.concurrency < 1)
    throw new RangeError(`Bad load config: concurrency '${c.concurrency}' must be a whole number >= 1`)
  if (!['http', 'fetch', 'etcd', 'etcd-grpc'].includes(c.transport))
    throw new RangeError(
      `Bad load config: transport '${String(c.transport)}' must be 'http', 'fetch', 'etcd' or 'etcd-grpc'`,
    )
  if (c.transport.startsWith('etcd') && c.route !== 'round-robin')
    throw new RangeError(
      `Bad load config: route '${c.route}' must be 'round-robin' with transport '${c.transport}'`,
    )
  return c
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  const text = process.argv[2] ?? (await lines.next()).value
  if (typeof text !== 'string') throw new TypeError('Bad load config: none on argv or stdin')
  const config = loadConfig(JSON.parse(text) as Partial<LoadConfig>)
  const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)
  let handler: (cmd: { cmd: string; atMs?: number }) => void = () => {}
  void (async () => {
    for (;;) {
      const next = await lines.next()
      if (next.done) break
      if (next.value.trim()) handler(JSON.parse(next.value) as { cmd: string; atMs?: number })
    }
    handler({ cmd: 'stop' })
  })()
  process.stderr.write(
    `load-client: seed ${config.seed}, ${config.concurrency} clients, ${config.transport}\n`,
  )
  emit(await runLoad(config, emit, { onCommand: (h) => (handler = h) }))
  process.exit(0)
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main()
