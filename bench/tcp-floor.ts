/**
 * The floor under the WebSocket fan-out figure: the same fan-out with nothing of ActorMesh in it.
 * `node --import tsx bench/tcp-floor.ts '<json config>'` starts `writers` processes, opens
 * `clients` plain TCP connections to them (round-robin, as the WebSocket benchmark spreads its
 * sockets over the nodes; read by `threads` worker threads, as bench/ws-load.ts reads) and then, `rounds` times, tells every writer at once to write one
 * `frameBytes` frame to each of its connections, timing from that word to each connection's read.
 *
 * What is left is the kernel's loopback TCP (a write and a read per client) and Node's stream
 * layer, on the same cores: on the 2-core test machine it is most of the WebSocket figure, which
 * is how we know what part of that figure the product can still win back.
 *
 * Output: one JSON line `{"event":"result",…}` (milliseconds) on stdout.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { connect, createServer, type Socket } from 'node:net'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { percentile, runAsScript } from './script.js'

export interface TcpFloorConfig {
  clients: number
  writers: number
  rounds: number
  /** Pause between rounds, so that one round's writes are done before the next. */
  intervalMs: number
  frameBytes: number
  threads: number
}

export interface TcpFloorResult {
  event: 'result'
  clients: number
  rounds: number
  /** Word to write → read at one client, over every (client, round). */
  p50Ms: number
  p99Ms: number
  /** Word → read at the last client of a round, over rounds. */
  allP99Ms: number
}

/** Messages from the coordinator to a writer, and back. */
type ToWriter = { go: true }
type FromWriter = { port: number } | { connected: number }

const now = () => performance.timeOrigin + performance.now()

/** A writer process: listens, then on each `go` writes one frame to every connection it holds. */
function writer(frameBytes: number): void {
  const sockets: Socket[] = []
  const frame = Buffer.alloc(frameBytes, 0x61)
  const server = createServer((s) => {
    s.setNoDelay(true)
    s.on('error', () => {})
    sockets.push(s)
    process.send!({ connected: sockets.length } satisfies FromWriter)
  })
  server.listen(0, '127.0.0.1', 4_096, () => {
    process.send!({ port: (server.address() as { port: number }).port } satisfies FromWriter)
  })
  process.on('message', (m: ToWriter) => {
    if (m.go) for (const s of sockets) s.write(frame)
  })
  process.on('disconnect', () => process.exit(0))
}

/** A reader thread: connects its clients (`c % threads === thread`), stamps each one's reads in `got`. */
async function reader(): Promise<void> {
  const { ports, clients, thread, threads, got } = workerData as {
    ports: number[]
    clients: number
    thread: number
    threads: number
    got: SharedArrayBuffer
  }
  const times = new Float64Array(got)
  const sockets: Socket[] = []
  for (let c = thread; c < clients; c += threads) {
    const s = connect(ports[c % ports.length]!, '127.0.0.1')
    s.on('data', () => {
      if (times[c] === 0) times[c] = now()
    })
    sockets.push(s)
    // A few hundred connections at a time, as the WebSocket benchmark opens its sockets.
    if (sockets.length % 250 === 0) await new Promise<void>((r) => s.once('connect', () => r()))
  }
  parentPort!.on('message', () => {
    for (const s of sockets) s.destroy()
    parentPort!.close()
  })
}

async function run(config: TcpFloorConfig): Promise<TcpFloorResult> {
  const writers: ChildProcess[] = []
  const readers: Worker[] = []
  try {
    const ports: number[] = []
    const connected = new Array<number>(config.writers).fill(0)
    for (let w = 0; w < config.writers; w++) {
      const child = fork(new URL(import.meta.url).pathname, ['writer', String(config.frameBytes)])
      writers.push(child)
      ports.push(
        await new Promise<number>((resolve) =>
          child.on('message', (m: FromWriter) => {
            if ('port' in m) resolve(m.port)
            else connected[w] = m.connected
          }),
        ),
      )
    }
    const shared = new SharedArrayBuffer(config.clients * Float64Array.BYTES_PER_ELEMENT)
    const round = { started: 0, got: new Float64Array(shared) }
    for (let thread = 0; thread < config.threads; thread++) {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { ports, clients: config.clients, thread, threads: config.threads, got: shared },
      })
      worker.on('error', (e) => process.stderr.write(`reader thread: ${String(e)}\n`))
      readers.push(worker)
    }
    const accepted = () => connected.reduce((a, b) => a + b, 0)
    const openBy = performance.now() + 120_000
    while (accepted() < config.clients) {
      if (performance.now() > openBy)
        throw new Error(`only ${accepted()} of ${config.clients} connections accepted`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const latencies: number[] = []
    const lasts: number[] = []
    for (let r = 0; r < config.rounds; r++) {
      round.got.fill(0)
      round.started = now()
      for (const child of writers) child.send({ go: true } satisfies ToWriter)
      const deadline = performance.now() + 30_000
      while (round.got.some((t) => t === 0) && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      let last = 0
      for (const t of round.got) {
        if (t === 0) continue
        latencies.push(t - round.started)
        last = Math.max(last, t - round.started)
      }
      lasts.push(last)
      await new Promise((resolve) => setTimeout(resolve, config.intervalMs))
    }
    latencies.sort((a, b) => a - b)
    lasts.sort((a, b) => a - b)
    return {
      event: 'result',
      clients: config.clients,
      rounds: config.rounds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      allP99Ms: percentile(lasts, 99),
    }
  } finally {
    for (const worker of readers) worker.postMessage('stop')
    for (const child of writers) child.kill()
  }
}

if (!isMainThread) void reader()
else if (process.argv[2] === 'writer') writer(Number(process.argv[3]))
else runAsScript(run)
