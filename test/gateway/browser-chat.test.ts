/**
 * The chat page (examples/chat/web, served at /chat/ by node/pages.ts) driven in headless Chromium:
 * two tabs on two different nodes of a three-process cluster chat through one room actor.
 * Debian's chromium is required (`.ci/run` installs it); without it the test fails, never skips.
 */
import { existsSync } from 'node:fs'
import { request } from 'node:http'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exampleModule } from '../actors/examples.js'
import { call, createNamespace, deploy } from '../integration/calls.js'
import { type ClusterNode, ProcessCluster, waitFor } from '../integration/cluster.js'

const CHROMIUM = '/usr/bin/chromium'
const NS = 'chat'
/** Generous: the machine has two cores and other tests run beside this one. */
const BROWSER_WAIT_MS = 90_000

/** A tab with every console error and uncaught exception it reported, and its sockets' URLs. */
interface Tab {
  page: Page
  errors: string[]
  sockets: string[]
}

/** Opens the page on `base` (a node's or a proxy's URL) and waits until its socket is live. */
async function openTab(browser: Browser, base: string, room: string, name: string): Promise<Tab> {
  const page = await browser.newPage()
  const tab: Tab = { page, errors: [], sockets: [] }
  page.on('console', (m) => {
    // Chromium logs every non-2xx answer to fetch; a 503 is retryable and the page retries it (a
    // leader moving, seen under load), so only that one is not the page's error.
    if (m.type() === 'error' && !/status of 503/.test(m.text())) tab.errors.push(m.text())
  })
  page.on('pageerror', (e) => tab.errors.push(`uncaught: ${e.message}`))
  page.on('websocket', (ws) => tab.sockets.push(ws.url()))
  await page.goto(`${base}/chat/?room=${room}&name=${name}`, { timeout: BROWSER_WAIT_MS })
  await live(tab)
  return tab
}

const live = (tab: Tab) => tab.page.waitForSelector('#state[data-state="live"]', { timeout: BROWSER_WAIT_MS })

/** Waits until the tab shows at least `count` posts. */
const postsShown = (tab: Tab, count: number) =>
  tab.page
    .locator('#messages li.post')
    .nth(count - 1)
    .waitFor({ timeout: BROWSER_WAIT_MS })

/**
 * A TCP proxy in front of a node: `cut()` ends every connection through it and holds new ones
 * (accepted, not forwarded) until `resume()`, so a page behind it sees its socket drop and its
 * reconnect wait, without a refused connection in its console.
 */
class CuttableProxy {
  private readonly open = new Set<Socket>()
  private held: Socket[] = []
  private cutOff = false
  private server: Server | undefined
  url = ''

  constructor(private readonly target: URL) {}

  async start(): Promise<void> {
    this.server = createServer((client) => (this.cutOff ? this.held.push(client) : this.forward(client)))
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r))
    const { port } = this.server.address() as { port: number }
    this.url = `http://127.0.0.1:${port}`
  }

  cut(): void {
    this.cutOff = true
    for (const s of this.open) s.destroy()
    this.open.clear()
  }

  resume(): void {
    this.cutOff = false
    for (const client of this.held.splice(0)) this.forward(client)
  }

  async stop(): Promise<void> {
    this.cut()
    for (const s of this.held.splice(0)) s.destroy()
    await new Promise((r) => this.server?.close(r) ?? r(undefined))
  }

  private forward(client: Socket): void {
    const upstream = connect(Number(this.target.port), this.target.hostname)
    for (const s of [client, upstream]) {
      this.open.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        this.open.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
  }
}

async function send(tab: Tab, text: string): Promise<void> {
  await tab.page.fill('#text', text)
  await tab.page.click('#compose button[type="submit"]')
}

/** The room as the tab shows it: one line per event, in the order shown. */
const shown = (tab: Tab) =>
  tab.page.$$eval('#messages li', (items) => items.map((li) => `${li.className}: ${li.textContent}`))

const rawGet = (node: ClusterNode, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${node.url}${path}`, { method: 'GET' }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => {
        body += d.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    })
    req.on('error', reject)
    req.end()
  })

describe('the chat page in headless Chromium', () => {
  const cluster = new ProcessCluster()
  let nodes: ClusterNode[] = []
  let browser: Browser | undefined

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `Chromium not found at '${CHROMIUM}': install it with 'apt-get install -y --no-install-recommends chromium' (.ci/run does)`,
      )
    await cluster.start(3)
    nodes = [...cluster.nodes]
    await createNamespace(nodes[0]!, NS)
    // A node answers 404 until its catalog has applied the create; the tabs use nodes 1 and 2.
    for (const n of nodes)
      await waitFor(
        async () => (await fetch(`${n.url}/v1/ns/${NS}`)).status === 200,
        () => `${NS} to be listed on ${n.url}`,
        60_000,
      )
    await deploy(nodes[1]!, NS, await exampleModule('chat'))
    // Every node routes a call to the room before a tab opens (its module is known everywhere).
    for (const n of nodes) await call(n, NS, 'r1', 'history', '', { consistency: 'stale' })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: BROWSER_WAIT_MS,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
  }, 240_000)
  afterAll(async () => {
    await browser?.close()
    await cluster.stop()
  }, 60_000)

  it('shows both messages in the same order in two tabs on different nodes, text escaped', async () => {
    const ann = await openTab(browser!, nodes[1]!.url, 'r1', 'ann')
    const bob = await openTab(browser!, nodes[2]!.url, 'r1', 'bob')
    // Sent at the same time from both tabs: the room orders them, and both tabs must agree.
    await Promise.all([send(ann, 'hello from ann'), send(bob, '<b>hi</b> from bob')])
    for (const tab of [ann, bob]) await postsShown(tab, 2)
    const [annSees, bobSees] = [await shown(ann), await shown(bob)]
    expect(annSees).toEqual(bobSees)
    expect(annSees.filter((line) => line.startsWith('post')).sort()).toEqual([
      'post: annhello from ann',
      'post: bob<b>hi</b> from bob',
    ])
    expect(annSees.filter((line) => line.startsWith('join')).sort()).toEqual([
      'join: ann joined',
      'join: bob joined',
    ])
    for (const tab of [ann, bob]) {
      // The chat actor numbers posts 1, 2 in the room's order; user text never becomes markup.
      expect(
        await tab.page.$$eval('#messages li.post', (items) => items.map((li) => li.dataset.seq)),
      ).toEqual(['1', '2'])
      expect(await tab.page.$$eval('#messages b', (items) => items.length)).toBe(0)
      expect(await tab.page.textContent('#state')).toBe('live')
      expect(await tab.page.textContent('#notice')).toBe('')
      expect(tab.errors).toEqual([])
    }
    await Promise.all([ann.page.close(), bob.page.close()])
  }, 240_000)

  it('resumes after a dropped socket with after=<last pos> and shows what was posted meanwhile', async () => {
    const proxy = new CuttableProxy(new URL(nodes[1]!.url))
    await proxy.start()
    try {
      const ann = await openTab(browser!, proxy.url, 'r2', 'ann')
      const bob = await openTab(browser!, nodes[2]!.url, 'r2', 'bob')
      await send(bob, 'before the cut')
      for (const tab of [ann, bob]) await postsShown(tab, 1)
      proxy.cut()
      await ann.page.waitForSelector('#state[data-state="reconnecting"]', { timeout: BROWSER_WAIT_MS })
      await send(bob, 'during the cut 1')
      await postsShown(bob, 2)
      await send(bob, 'during the cut 2')
      await postsShown(bob, 3)
      expect(await ann.page.$$eval('#messages li.post', (items) => items.length)).toBe(1)
      proxy.resume()
      await postsShown(ann, 3)
      await live(ann)
      expect(await shown(ann)).toEqual(await shown(bob))
      expect(ann.sockets).toHaveLength(2)
      expect(ann.sockets[0]).not.toContain('after=')
      expect(ann.sockets[1]).toMatch(/\/v1\/ns\/chat\/actors\/r2\/ws\?after=\d+(\.\d+)?$/)
      for (const tab of [ann, bob]) expect(tab.errors).toEqual([])
      await Promise.all([ann.page.close(), bob.page.close()])
    } finally {
      await proxy.stop()
    }
  }, 240_000)

  it('serves only the page folder, without a token, and redirects /chat to /chat/', async () => {
    const node = nodes[0]!
    const redirect = await fetch(`${node.url}/chat?room=x`, { redirect: 'manual' })
    expect(redirect.status).toBe(301)
    expect(redirect.headers.get('location')).toBe('/chat/?room=x')
    for (const [path, type] of [
      ['/chat/', 'text/html; charset=utf-8'],
      ['/chat/index.html', 'text/html; charset=utf-8'],
      ['/chat/chat.js', 'text/javascript; charset=utf-8'],
      ['/chat/style.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await fetch(`${node.url}${path}`)
      expect(res.status, path).toBe(200)
      expect(res.headers.get('content-type'), path).toBe(type)
      expect(res.headers.get('cache-control'), path).toBe('no-cache')
    }
    for (const path of [
      '/chat/missing.js',
      '/chat/..%2fpages.test.ts',
      '/chat/..%2f..%2f..%2fpackage.json',
      '/chat/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
      '/chat/chat.js%00.html',
      '/chat/%E0%A4%A.js',
      '/chat/../../package.json',
    ]) {
      const res = await rawGet(node, path)
      expect(res.status, path).toBe(404)
      expect(res.body, path).not.toContain('"devDependencies"')
    }
    const post = await fetch(`${node.url}/chat/`, { method: 'POST' })
    expect(post.status).toBe(405)
    expect(((await post.json()) as { code: string }).code).toBe('ACTORMESH_METHOD_NOT_ALLOWED')
  }, 60_000)
})
