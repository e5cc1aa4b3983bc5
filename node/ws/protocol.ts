/**
 * The RPC methods between a node that holds WebSocket clients of an actor (the *subscriber*) and
 * the namespace's leader (the *source*), with validators for what arrives off the wire. Every
 * request and answer is small msgpack; events travel as `[index, n, data]`.
 *
 *   ws.sub    subscriber → source  { ns, feeds: [{actor, after}] } → { feeds: [{actor, cursor} | {actor, gone}] }
 *   ws.unsub  subscriber → source  { ns, actors }                  → {}
 *   ws.replay anyone → a replica   { ns, actor, after }            → { events, more } | { gone }
 *   ws.push   source → subscriber  { ns, feeds: [{actor, from, events} | {actor, gone}] }
 *                                  → { cursors: [[actor, cursor | null | 'wait']] }
 */
import { isPos, type Pos } from './events.js'

export const WS_SUB = 'ws.sub'
export const WS_UNSUB = 'ws.unsub'
export const WS_REPLAY = 'ws.replay'
export const WS_PUSH = 'ws.push'

/** One broadcast on the wire: log index, number within the entry, data. */
export type WireEvent = [number, number, Uint8Array]

export interface SubRequest {
  ns: string
  /** `after`: the subscriber's cursor; `null` for a new feed that starts at the source's tail. */
  feeds: Array<{ actor: string; after: Pos | null }>
}

export interface SubAnswer {
  /** `cursor`: the feed's registered cursor; `gone`: the source's buffer reaches back only to it. */
  feeds: Array<{ actor: string; cursor: Pos } | { actor: string; gone: Pos }>
}

export interface UnsubRequest {
  ns: string
  actors: string[]
}

export interface ReplayRequest {
  ns: string
  actor: string
  after: Pos
}

export type ReplayAnswer = { events: WireEvent[]; more: boolean } | { gone: Pos }

/** Every broadcast of `actor` after `from`, in commit order (possibly not all of them yet). */
export type PushFeed = { actor: string; from: Pos; events: WireEvent[] } | { actor: string; gone: Pos }

export interface PushRequest {
  ns: string
  feeds: PushFeed[]
}

/**
 * Per actor of a push: the subscriber's cursor after it; `null`: no such subscription here (the
 * source forgets it); `'wait'`: the subscription is being registered, push again later.
 */
export type PushCursor = Pos | null | 'wait'

export interface PushAnswer {
  cursors: Array<[string, PushCursor]>
}

/** Bytes of an actor id or namespace name accepted off the wire. */
const NAME_CHARS_MAX = 1_024
/** Feeds in one request accepted off the wire. */
export const WIRE_FEEDS_MAX = 10_000

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= NAME_CHARS_MAX
}

function isEvents(v: unknown): v is WireEvent[] {
  return (
    Array.isArray(v) &&
    v.every(
      (e) =>
        Array.isArray(e) &&
        e.length === 3 &&
        isPos({ index: e[0], n: e[1] }) &&
        (e[2] as unknown) instanceof Uint8Array,
    )
  )
}

function bad(method: string, what: string): TypeError {
  return new TypeError(`Bad '${method}' request: ${what}`)
}

function feedsOf(method: string, p: unknown): unknown[] {
  const r = p as { ns?: unknown; feeds?: unknown }
  if (typeof r !== 'object' || r === null || !isName(r.ns)) throw bad(method, "'ns' must be a name")
  if (!Array.isArray(r.feeds) || r.feeds.length > WIRE_FEEDS_MAX)
    throw bad(method, `'feeds' must be an array of at most ${WIRE_FEEDS_MAX}`)
  return r.feeds
}

export function checkSubRequest(p: unknown): SubRequest {
  for (const f of feedsOf(WS_SUB, p)) {
    const feed = f as { actor?: unknown; after?: unknown }
    if (!isName(feed?.actor) || !(feed.after === null || isPos(feed.after)))
      throw bad(WS_SUB, 'each feed needs an actor and a cursor or null')
  }
  return p as SubRequest
}

export function checkUnsubRequest(p: unknown): UnsubRequest {
  const r = p as { ns?: unknown; actors?: unknown }
  if (typeof r !== 'object' || r === null || !isName(r.ns)) throw bad(WS_UNSUB, "'ns' must be a name")
  if (!Array.isArray(r.actors) || r.actors.length > WIRE_FEEDS_MAX || !r.actors.every(isName))
    throw bad(WS_UNSUB, "'actors' must be an array of names")
  return r as UnsubRequest
}

export function checkReplayRequest(p: unknown): ReplayRequest {
  const r = p as { ns?: unknown; actor?: unknown; after?: unknown }
  if (typeof r !== 'object' || r === null || !isName(r.ns) || !isName(r.actor) || !isPos(r.after))
    throw bad(WS_REPLAY, "'ns', 'actor' and 'after' are required")
  return r as ReplayRequest
}

export function checkPushRequest(p: unknown): PushRequest {
  for (const f of feedsOf(WS_PUSH, p)) {
    const feed = f as { actor?: unknown; from?: unknown; events?: unknown; gone?: unknown }
    const ok =
      isName(feed?.actor) &&
      (feed.gone !== undefined ? isPos(feed.gone) : isPos(feed.from) && isEvents(feed.events))
    if (!ok) throw bad(WS_PUSH, 'each feed needs an actor and either a cursor with events or a gone cursor')
  }
  return p as PushRequest
}

export function checkSubAnswer(a: unknown): SubAnswer {
  const feeds = (a as { feeds?: unknown })?.feeds
  const ok =
    Array.isArray(feeds) &&
    feeds.every(
      (f: { actor?: unknown; cursor?: unknown; gone?: unknown }) =>
        isName(f?.actor) && (f.gone !== undefined ? isPos(f.gone) : isPos(f.cursor)),
    )
  if (!ok) throw new TypeError(`Bad '${WS_SUB}' answer`)
  return a as SubAnswer
}

export function checkReplayAnswer(a: unknown): ReplayAnswer {
  const r = a as { events?: unknown; more?: unknown; gone?: unknown }
  const ok =
    typeof r === 'object' &&
    r !== null &&
    (r.gone !== undefined ? isPos(r.gone) : isEvents(r.events) && typeof r.more === 'boolean')
  if (!ok) throw new TypeError(`Bad '${WS_REPLAY}' answer`)
  return r as ReplayAnswer
}

export function checkPushAnswer(a: unknown): PushAnswer {
  const cursors = (a as { cursors?: unknown })?.cursors
  const ok =
    Array.isArray(cursors) &&
    cursors.every(
      (c) =>
        Array.isArray(c) &&
        c.length === 2 &&
        isName(c[0]) &&
        (c[1] === null || c[1] === 'wait' || isPos(c[1])),
    )
  if (!ok) throw new TypeError(`Bad '${WS_PUSH}' answer`)
  return a as PushAnswer
}
