/**
 * The contract between the actor runtime (actors/) and namespace state (storage/). actors/
 * imports only these types; storage/ implements them on LibSQL, and actors' unit tests use an
 * in-memory fake.
 *
 * Keys are UTF-8 strings (validated: well-formed, at most `keyBytesMax` bytes); values are bytes.
 */

/** One write of a call's write set. `value: null` deletes the key. */
export interface StateWrite {
  actor: string
  key: string
  value: Uint8Array | null
}

/** A page of an actor's keys in key order, with a cursor to continue after the last one. */
export interface StatePage {
  entries: Array<[key: string, value: Uint8Array]>
  /** Pass as `after` to read the next page; absent when there is no more. */
  cursor?: string
}

/**
 * Read access to one namespace's actor state. Actors are activated by loading their whole state
 * (bounded by the per-actor quota), so host calls during execution are synchronous memory reads;
 * `get` and `list` serve other readers (admin, tests, snapshots).
 */
export interface StateReader {
  /** Every key and value of one actor, in key order. */
  loadActor(
    actor: string,
    options?: { signal?: AbortSignal },
  ): Promise<Array<[key: string, value: Uint8Array]>>
  get(actor: string, key: string, options?: { signal?: AbortSignal }): Promise<Uint8Array | undefined>
  list(
    actor: string,
    prefix: string,
    page: { limit: number; after?: string },
    options?: { signal?: AbortSignal },
  ): Promise<StatePage>
  /** Bytes of keys and values one actor stores (for quotas). */
  actorBytes(actor: string, options?: { signal?: AbortSignal }): Promise<number>
}
