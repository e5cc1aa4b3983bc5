/**
 * An in-memory StateReader for the actor runtime's unit tests, with `apply` standing in for the
 * Raft apply path (the test commits a call's write set into the store, then reports commit).
 */
import type { StatePage, StateReader, StateWrite } from '../../storage/index.js'

const encoder = new TextEncoder()

/** An in-memory namespace store. */
export class FakeState implements StateReader {
  readonly actors = new Map<string, Map<string, Uint8Array>>()
  loads = 0

  private of(actor: string): Map<string, Uint8Array> {
    let m = this.actors.get(actor)
    if (!m) this.actors.set(actor, (m = new Map()))
    return m
  }

  apply(writes: StateWrite[]): void {
    for (const w of writes) {
      if (w.value === null) this.of(w.actor).delete(w.key)
      else this.of(w.actor).set(w.key, w.value)
    }
  }

  async loadActor(actor: string, options?: { signal?: AbortSignal }): Promise<Array<[string, Uint8Array]>> {
    options?.signal?.throwIfAborted()
    this.loads++
    return [...this.of(actor)].sort((a, b) => (a[0] < b[0] ? -1 : 1))
  }

  async get(actor: string, key: string): Promise<Uint8Array | undefined> {
    return this.actors.get(actor)?.get(key)
  }

  async list(actor: string, prefix: string, page: { limit: number; after?: string }): Promise<StatePage> {
    const all = [...this.of(actor)]
      .filter(([k]) => k.startsWith(prefix) && (!page.after || k > page.after))
      .sort()
    const entries = all.slice(0, page.limit)
    return page.limit < all.length ? { entries, cursor: entries[entries.length - 1]![0] } : { entries }
  }

  async actorBytes(actor: string): Promise<number> {
    let n = 0
    for (const [k, v] of this.of(actor)) n += encoder.encode(k).length + v.length
    return n
  }
}
