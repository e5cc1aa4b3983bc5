/** What the subscriber side hands to a WebSocket connection, and how a connection looks to it. */
import type { Pos } from './events.js'

/** A broadcast on its way to clients; clients render it once per encoding and share the bytes. */
export class FeedEvent {
  private readonly frames = new Map<string, unknown>()
  constructor(
    readonly pos: Pos,
    readonly data: Uint8Array,
  ) {}

  /** The frame for an encoding, built once (`build` must give the same type for the same key). */
  frame<T>(encoding: string, build: (event: FeedEvent) => T): T {
    let f = this.frames.get(encoding) as T | undefined
    if (f === undefined) {
      f = build(this)
      this.frames.set(encoding, f)
    }
    return f
  }
}

/** Why a client cannot be served any more. */
export type EndReason = { gone: Pos } | { slow: string } | { missing: string }

/** A WebSocket connection as the hub sees it. */
export interface FeedClient {
  readonly ns: string
  readonly actor: string
  /** The cursor to resume after (`?after=`); undefined: from now on. */
  readonly after: Pos | undefined
  /** The next broadcast after the client's cursor. */
  deliver(event: FeedEvent): void
  /** Subscribed: every broadcast after `cursor` will follow. */
  ready(cursor: Pos): void
  /**
   * The client cannot be served: the buffer no longer reaches back to its cursor (`gone`), it fell
   * behind (`slow`), or its namespace was deleted (`missing`).
   */
  end(reason: EndReason): void
}
