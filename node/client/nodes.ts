/**
 * The client's node URLs and which one it talks to now. Every node serves every call and every
 * subscription, so the client sticks to one until it fails to connect, then moves to the next.
 */
export class NodeRing {
  readonly urls: readonly string[]
  private current = 0

  constructor(urls: readonly string[]) {
    if (!Array.isArray(urls) || urls.length === 0)
      throw new TypeError(`Bad nodes '${String(urls)}': expected a non-empty array of http(s) URLs`)
    this.urls = urls.map(normalize)
  }

  /** The node to try now, with its index (hand the index back to `failed`). */
  pick(): { url: string; index: number } {
    return { url: this.urls[this.current]!, index: this.current }
  }

  /**
   * Node `index` failed to connect: move past it, unless another request already did (concurrent
   * requests that fail on the same node move the ring once, not once each).
   */
  failed(index: number): void {
    if (index === this.current) this.current = (index + 1) % this.urls.length
  }
}

/** `http://host:port` without a trailing slash; throws TypeError naming a URL that is not http(s). */
function normalize(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TypeError(`Bad node URL '${url}': expected an absolute http(s) URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new TypeError(`Bad node URL '${url}': expected http: or https:`)
  return parsed.href.replace(/\/+$/, '')
}
