/**
 * The WebSocket subscriber check: what each subscriber of one actor received, against what every
 * other subscriber received and against the posts the clients made. Docs (gateway.md, "Delivery")
 * promise that a socket gets every broadcast after its `ready` position, in commit order, once, and
 * that a resume with `after` continues right after it — or is told `ACTORMESH_EVENTS_GONE`, never
 * silently skipped ahead. So, per subscriber, a *segment* begins at a fresh socket's `ready`
 * (no `after`), goes on across resumed sockets, and ends at an `EVENTS_GONE`; within a segment:
 *
 * - positions strictly increase, and all lie after the segment's `ready` cursor (`order`);
 * - every position any subscriber received between the cursor and the segment's last event is
 *   in it (`gap`);
 * - a resumed socket's `ready` names the `after` it was given (`resume`).
 *
 * Across subscribers a position carries one payload (`payload`); one post's text is at most at one
 * position, as idempotency keys make a retried post run once (`twice`); a post that certainly
 * failed is never delivered (`failed-seen`); and an acknowledged post that nobody received is
 * `lost` when some segment must have held it — the segment was ready before the post was invoked
 * and received a post invoked after this one was acknowledged, so the post's position lies inside
 * it (its entry was appended after the `ready` cursor was committed and committed before the later
 * post's entry was appended). An acknowledged post no segment spans is "not checkable".
 */

/** One thing a subscriber saw or did, in the order it happened to that subscriber. */
export type WsRecord =
  | { sub: number; kind: 'connect'; node: number; after?: string; time: number }
  | { sub: number; kind: 'ready'; node: number; pos: string; after?: string; time: number }
  | { sub: number; kind: 'event'; node: number; pos: string; payload: string; time: number }
  | { sub: number; kind: 'gone'; node: number; since?: string; time: number }
  | { sub: number; kind: 'close'; node: number; code: number; reason: string; time: number }

/** A post a client made (an operation of the history). */
export interface WsPost {
  /** The history operation's id. */
  id: number
  text: string
  status: 'ok' | 'fail' | 'info'
  call: number
  /** Completion time; `Infinity` when unknown. */
  ret: number
}

export interface WsViolation {
  kind: 'order' | 'gap' | 'resume' | 'protocol' | 'payload' | 'twice' | 'failed-seen' | 'lost'
  sub?: number
  pos?: string
  message: string
  /** History operation ids involved (posts). */
  ops: number[]
}

export interface WsOrderResult {
  subscribers: number
  segments: number
  /** Events received, over all subscribers. */
  events: number
  /** Distinct positions received. */
  positions: number
  connects: number
  gone: number
  posts: { acked: number; delivered: number; notCheckable: number; lost: number }
  /** Ids of acknowledged posts nobody received and no segment spans. */
  notCheckable: number[]
  violations: WsViolation[]
}

/** A position `"<index>.<n>"`, or a cursor `"<index>"` (after all of entry `index`). */
type Pos = readonly [index: number, n: number]

/** Parses a position or cursor; throws `RangeError` naming the text when it is neither. */
export function parsePosition(text: string): Pos {
  const m = /^(\d{1,15})(?:\.(\d{1,9}))?$/.exec(text)
  if (!m) throw new RangeError(`Bad position '${text}': expected <index> or <index>.<n>`)
  return [Number(m[1]), m[2] === undefined ? Number.POSITIVE_INFINITY : Number(m[2])]
}

/** Orders positions numerically (`'9.1' < '10.0'`); a cursor `'10'` sorts after every `'10.n'`. */
export function comparePositions(a: string, b: string): number {
  const [ai, an] = parsePosition(a)
  const [bi, bn] = parsePosition(b)
  if (ai !== bi) return ai - bi
  return an === bn ? 0 : an < bn ? -1 : 1
}

/** The text of a chat post's payload (examples/chat), undefined for anything else. */
export function chatText(payload: string): string | undefined {
  try {
    const m = JSON.parse(payload) as { type?: unknown; text?: unknown }
    return m.type === 'post' && typeof m.text === 'string' ? m.text : undefined
  } catch {
    return undefined
  }
}

interface Segment {
  sub: number
  from: string
  readyTime: number
  events: Array<{ pos: string; payload: string }>
  last: string | undefined
}

/** Reports at most this many gap violations per segment's missing positions (they are counted). */
const GAP_POSITIONS_LISTED_MAX = 5

export function checkWsOrder(
  records: readonly WsRecord[],
  posts: readonly WsPost[],
  textOf: (payload: string) => string | undefined = chatText,
): WsOrderResult {
  const violations: WsViolation[] = []
  const segments = buildSegments(records, violations)
  const union = unionOf(segments, violations)
  const positions = [...union.keys()].sort(comparePositions)
  for (const seg of segments) checkGaps(seg, positions, violations)
  const postResult = checkPosts(segments, union, posts, textOf, violations)
  const subs = new Set(records.map((r) => r.sub))
  return {
    subscribers: subs.size,
    segments: segments.length,
    events: segments.reduce((s, g) => s + g.events.length, 0),
    positions: positions.length,
    connects: records.filter((r) => r.kind === 'connect').length,
    gone: records.filter((r) => r.kind === 'gone').length,
    posts: postResult.counts,
    notCheckable: postResult.notCheckable,
    violations,
  }
}

/** Splits each subscriber's records into segments, checking order and resumes as it goes. */
function buildSegments(records: readonly WsRecord[], violations: WsViolation[]): Segment[] {
  const out: Segment[] = []
  const open = new Map<number, Segment>()
  const start = (r: { sub: number; pos: string; time: number }) => {
    const seg: Segment = { sub: r.sub, from: r.pos, readyTime: r.time, events: [], last: undefined }
    open.set(r.sub, seg)
    out.push(seg)
  }
  for (const r of records) {
    const seg = open.get(r.sub)
    if (r.kind === 'gone') open.delete(r.sub)
    else if (r.kind === 'ready') {
      if (r.after === undefined || !seg) start(r)
      else {
        const cursor = seg.last ?? seg.from
        if (r.after !== cursor)
          violations.push({
            kind: 'protocol',
            sub: r.sub,
            pos: r.after,
            message: `subscriber ${r.sub} resumed after '${r.after}' but had received up to '${cursor}'`,
            ops: [],
          })
        if (r.pos !== r.after)
          violations.push({
            kind: 'resume',
            sub: r.sub,
            pos: r.pos,
            message: `subscriber ${r.sub} resumed with after=${r.after} on n${r.node} but ready said '${r.pos}'`,
            ops: [],
          })
      }
    } else if (r.kind === 'event') {
      if (!seg) {
        violations.push({
          kind: 'protocol',
          sub: r.sub,
          pos: r.pos,
          message: `subscriber ${r.sub} got event '${r.pos}' from n${r.node} before a ready frame`,
          ops: [],
        })
        continue
      }
      const before = seg.last ?? seg.from
      if (comparePositions(r.pos, before) <= 0)
        violations.push({
          kind: 'order',
          sub: r.sub,
          pos: r.pos,
          message: `subscriber ${r.sub} got '${r.pos}' from n${r.node} at ${Math.round(r.time)} ms after '${before}'${r.pos === before ? ' (a duplicate)' : ''}`,
          ops: [],
        })
      seg.events.push({ pos: r.pos, payload: r.payload })
      if (seg.last === undefined || comparePositions(r.pos, seg.last) > 0) seg.last = r.pos
    }
  }
  return out
}

/** Every position received by anyone, with its payload; a position with two payloads is a violation. */
function unionOf(segments: readonly Segment[], violations: WsViolation[]): Map<string, string> {
  const union = new Map<string, string>()
  const reported = new Set<string>()
  for (const seg of segments)
    for (const e of seg.events) {
      const seen = union.get(e.pos)
      if (seen === undefined) union.set(e.pos, e.payload)
      else if (seen !== e.payload && !reported.has(e.pos)) {
        reported.add(e.pos)
        violations.push({
          kind: 'payload',
          sub: seg.sub,
          pos: e.pos,
          message: `position '${e.pos}' carried ${JSON.stringify(seen)} and, to subscriber ${seg.sub}, ${JSON.stringify(e.payload)}`,
          ops: [],
        })
      }
    }
  return union
}

/** Every received position after the segment's cursor, up to its last event, must be in it. */
function checkGaps(seg: Segment, positions: readonly string[], violations: WsViolation[]): void {
  if (seg.last === undefined) return
  const had = new Set(seg.events.map((e) => e.pos))
  const missing = positions.filter(
    (p) => comparePositions(p, seg.from) > 0 && comparePositions(p, seg.last!) <= 0 && !had.has(p),
  )
  if (missing.length === 0) return
  const listed = missing.slice(0, GAP_POSITIONS_LISTED_MAX).join(', ')
  violations.push({
    kind: 'gap',
    sub: seg.sub,
    pos: missing[0],
    message: `subscriber ${seg.sub}'s segment after '${seg.from}' up to '${seg.last}' lacks ${missing.length} position(s) others received: ${listed}${missing.length > GAP_POSITIONS_LISTED_MAX ? ', ...' : ''}`,
    ops: [],
  })
}

/** Posts against deliveries: no post twice, no failed post delivered, no acknowledged post lost. */
function checkPosts(
  segments: readonly Segment[],
  union: ReadonlyMap<string, string>,
  posts: readonly WsPost[],
  textOf: (payload: string) => string | undefined,
  violations: WsViolation[],
): { counts: WsOrderResult['posts']; notCheckable: number[] } {
  const byText = new Map(posts.map((p) => [p.text, p]))
  const where = new Map<string, string[]>()
  for (const [pos, payload] of union) {
    const text = textOf(payload)
    if (text === undefined) continue
    const list = where.get(text) ?? []
    list.push(pos)
    where.set(text, list)
  }
  for (const [text, at] of where) {
    const post = byText.get(text)
    const ops = post ? [post.id] : []
    if (at.length > 1)
      violations.push({
        kind: 'twice',
        pos: at[1],
        message: `post '${text}' was delivered at ${at.length} positions: ${at.sort(comparePositions).join(', ')}`,
        ops,
      })
    if (post?.status === 'fail')
      violations.push({
        kind: 'failed-seen',
        pos: at[0],
        message: `post '${text}' certainly failed (op ${post.id}) but was delivered at '${at[0]}'`,
        ops,
      })
  }
  // The latest invocation, per segment, of a post it received: it bounds the segment's reach.
  const reach = segments.map((seg) => {
    let latest = Number.NEGATIVE_INFINITY
    for (const e of seg.events) {
      const text = textOf(e.payload)
      const post = text === undefined ? undefined : byText.get(text)
      if (post) latest = Math.max(latest, post.call)
    }
    return { readyTime: seg.readyTime, latest }
  })
  const acked = posts.filter((p) => p.status === 'ok')
  const notCheckable: number[] = []
  let lost = 0
  for (const p of acked) {
    if (where.has(p.text)) continue
    const spanning = reach.findIndex((r) => r.readyTime < p.call && r.latest > p.ret)
    if (spanning < 0) {
      notCheckable.push(p.id)
      continue
    }
    lost++
    violations.push({
      kind: 'lost',
      sub: segments[spanning]!.sub,
      message: `post '${p.text}' (op ${p.id}, acknowledged at ${Math.round(p.ret)} ms) reached no subscriber, though subscriber ${segments[spanning]!.sub}'s segment after '${segments[spanning]!.from}' spans it`,
      ops: [p.id],
    })
  }
  return {
    counts: {
      acked: acked.length,
      delivered: acked.filter((p) => where.has(p.text)).length,
      notCheckable: notCheckable.length,
      lost,
    },
    notCheckable,
  }
}
