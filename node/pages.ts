/**
 * The chat example's browser page (`examples/chat/web/`), served by the gateway as an open route
 * like `/healthz`: `GET /chat/` is its `index.html`, `/chat/<file>` one of its assets, and `/chat`
 * redirects to `/chat/` (the page loads its assets by relative URL). The page itself talks to the
 * ordinary `/v1/ns/…` routes, which keep their own access rules.
 *
 * Only files directly inside the folder, with an extension from a fixed list, are served: the
 * decoded path is resolved, symlinks included, and must stay inside the folder. Files are read on
 * each request (they are small and rarely asked for) and sent with `cache-control: no-cache`.
 */
import { realpathSync } from 'node:fs'
import { readFile, realpath, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, sep } from 'node:path'

/** The URL prefix of the page. */
const PREFIX = '/chat/'

/** Bytes of one served file (the page's files are a few KiB). */
const PAGE_FILE_BYTES_MAX = 256 * 1024

/** The extensions served, with their content types; anything else is 404. */
const CONTENT_TYPES: ReadonlyMap<string, string> = new Map([
  ['.html', 'text/html; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
  ['.png', 'image/png'],
])

/**
 * What the page may load: its own files, its own origin's HTTP and WebSocket routes (CSP 3's
 * `'self'` covers `ws:` to the same host), and no inline script. `img-src data:` is for the empty
 * favicon, which keeps the browser from asking for `/favicon.ico` (a 404 in its console).
 */
const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"

/** Serves the chat page; see the module comment. */
export interface Pages {
  /** Answers `/chat` and `/chat/…`; false for every other path (the gateway goes on). */
  route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>
}

/**
 * The chat page's folder. From a checkout (run with tsx) it is `../examples/chat/web` beside this
 * file; from the build (`dist/node/pages.js`, which does not copy it) it is two levels up.
 */
function defaultDir(): string {
  const here = import.meta.dirname
  const candidates = [
    join(here, '..', 'examples', 'chat', 'web'),
    join(here, '..', '..', 'examples', 'chat', 'web'),
  ]
  for (const dir of candidates) {
    try {
      return realpathSync(dir)
    } catch {}
  }
  return candidates[0]!
}

/** The chat page's server; `dir` defaults to the repository's `examples/chat/web`. */
export function chatPages(options: { dir?: string } = {}): Pages {
  const dir = options.dir ?? defaultDir()
  return { route: (req, res, url) => servePage(dir, req, res, url) }
}

async function servePage(dir: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const path = url.pathname
  if (path !== '/chat' && !path.startsWith(PREFIX)) return false
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendError(res, 405, 'ACTORMESH_METHOD_NOT_ALLOWED', `Cannot ${req.method} '${path}'`, {
      allow: 'GET, HEAD',
    })
    return true
  }
  if (path === '/chat') {
    res.writeHead(301, { location: `${PREFIX}${url.search}`, 'cache-control': 'no-cache' })
    res.end()
    return true
  }
  const file = await pageFile(dir, path.slice(PREFIX.length) || 'index.html')
  if (file === undefined) {
    sendError(res, 404, 'ACTORMESH_NOT_FOUND', `No page file '${path}'`)
    return true
  }
  const headers: Record<string, string> = {
    'content-type': file.contentType,
    'content-length': String(file.bytes.length),
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
  }
  if (file.contentType.startsWith('text/html')) headers['content-security-policy'] = CONTENT_SECURITY_POLICY
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : file.bytes)
  return true
}

/** The bytes and type of `name` inside `dir`, or undefined when it is not a servable file there. */
async function pageFile(
  dir: string,
  name: string,
): Promise<{ bytes: Buffer; contentType: string } | undefined> {
  let decoded: string
  try {
    decoded = decodeURIComponent(name)
  } catch {
    return undefined
  }
  const contentType = CONTENT_TYPES.get(extname(decoded).toLowerCase())
  // One plain file name: no folder, no dot file, no NUL (which the file system would refuse).
  if (contentType === undefined || /[/\\\0]/.test(decoded) || decoded.startsWith('.')) return undefined
  try {
    const root = await realpath(dir)
    const resolved = await realpath(join(root, decoded))
    if (!resolved.startsWith(root + sep)) return undefined
    const info = await stat(resolved)
    if (!info.isFile() || info.size > PAGE_FILE_BYTES_MAX) return undefined
    return { bytes: await readFile(resolved), contentType }
  } catch {
    return undefined
  }
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-cache', ...headers })
  res.end(JSON.stringify({ code, message }))
}
