/**
 * A recording WebSocket client for tests against node processes: every event with its position,
 * replies by id, and how the socket closed.
 */
import WebSocket from 'ws'
import { comparePos, parsePos } from '../../node/ws/events.js'
import type { ClusterNode } from '../integration/cluster.js'
import { waitFor } from '../integration/cluster.js'

export interface RecordedEvent {
  pos: string
  text: string
}

export class RecordingSocket {
  readonly events: RecordedEvent[] = []
  readonly frames: Array<Record<string, unknown>> = []
  readyAt: string | undefined
  closed: { code: number; reason: string } | undefined
  readonly ws: WebSocket
  readonly opened: Promise<void>
  private nextId = 1
  private readonly replies = new Map<number, (frame: Record<string, unknown>) => void>()

  constructor(
    readonly node: ClusterNode,
    readonly ns: string,
    readonly actor: string,
    after?: string,
  ) {
    const q = after !== undefined ? `?after=${after}` : ''
    this.ws = new WebSocket(`${node.url.replace(/^http/, 'ws')}/v1/ns/${ns}/actors/${actor}/ws${q}`)
    this.ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Record<string, unknown>
      this.frames.push(f)
      if (typeof f.event === 'string') this.events.push({ pos: f.pos as string, text: f.event })
      else if (f.ready === true) this.readyAt = f.pos as string
      else if (typeof f.id === 'number') this.replies.get(f.id)?.(f)
    })
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) }
      for (const done of this.replies.values()) done({ ok: false, code: 'CLOSED' })
    })
    this.ws.on('error', () => {})
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('close', () => reject(new Error(`socket to ${node.url} closed before it opened`)))
    })
  }

  async ready(timeoutMs = 60_000): Promise<string> {
    return waitFor(
      () => this.readyAt ?? (this.closed ? Promise.reject(new Error('closed')) : undefined),
      () => `socket ${this.actor}@${this.node.url} to be ready`,
      timeoutMs,
      () => this.closed !== undefined,
    )
  }

  /** A call over the socket; resolves with the reply frame (ok or not). */
  call(method: string, payload: string, key?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++
    return new Promise((resolve) => {
      if (this.closed || this.ws.readyState !== WebSocket.OPEN) return resolve({ ok: false, code: 'CLOSED' })
      this.replies.set(id, (f) => {
        this.replies.delete(id)
        resolve(f)
      })
      this.ws.send(JSON.stringify({ id, method, payload, ...(key ? { key } : {}) }))
    })
  }

  close(): void {
    this.ws.terminate()
  }
}

/** Fails unless positions strictly increase (no duplicate, commit order). */
export function positionsIncrease(events: RecordedEvent[]): boolean {
  for (let i = 1; i < events.length; i++) {
    if (comparePos(parsePos(events[i - 1]!.pos), parsePos(events[i]!.pos)) >= 0) return false
  }
  return true
}

/** The chat room's sequence number of a post event (undefined for other events). */
export function chatSeq(e: RecordedEvent): number | undefined {
  const m = JSON.parse(e.text) as { type?: string; seq?: number }
  return m.type === 'post' ? m.seq : undefined
}

/** Opens `count` sockets to `actor`, spread round-robin over `nodes`, `batch` at a time; waits until all are ready. */
export async function openSockets(
  nodes: ClusterNode[],
  ns: string,
  actor: string,
  count: number,
  batch = 50,
): Promise<RecordingSocket[]> {
  const out: RecordingSocket[] = []
  for (let i = 0; i < count; i += batch) {
    const group: RecordingSocket[] = []
    for (let j = i; j < Math.min(count, i + batch); j++)
      group.push(new RecordingSocket(nodes[j % nodes.length]!, ns, actor))
    await Promise.all(group.map((s) => s.ready()))
    out.push(...group)
  }
  return out
}
