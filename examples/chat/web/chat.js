// The chat page: one room of the chat example actor (examples/chat/assembly/index.ts), served by
// the gateway at /chat/ (node/pages.ts). The room's broadcasts arrive over the gateway's WebSocket
// and resume after the last position shown when the socket closes; posts go over HTTP with an
// idempotency key, so a retry after an unknown outcome posts once. Protocol: docs/gateway.md.
// Query: ?room=<actor id> (default lobby), ?ns=<namespace> (default chat), ?name=<your name>.

const params = new URLSearchParams(location.search)
const ns = params.get('ns') || 'chat'
const room = params.get('room') || 'lobby'
const actorPath = `/v1/ns/${encodeURIComponent(ns)}/actors/${encodeURIComponent(room)}`

/** Wait before a reconnect: the first, doubled after each failure up to the last. */
const RECONNECT_MS_MIN = 250
const RECONNECT_MS_MAX = 5000
/** Tries of one call while the gateway answers 503 (retryable) or the network fails. */
const CALL_ATTEMPTS_MAX = 20
/** Messages kept on the page; older ones are removed. */
const MESSAGES_MAX = 500

const $ = (id) => document.getElementById(id)
const el = {
  room: $('room'),
  state: $('state'),
  messages: $('messages'),
  compose: $('compose'),
  name: $('name'),
  text: $('text'),
  notice: $('notice'),
}

/** Position of the last event shown (or of the first `ready`): where a new socket resumes. */
let lastPos
let socket
let reconnectMs = RECONNECT_MS_MIN
/** The name this page has joined the room with. */
let joinedAs

function setState(state, text = state) {
  el.state.dataset.state = state
  el.state.textContent = text
}

function notice(text) {
  el.notice.textContent = text
}

/** A position "<index>.<n>" or cursor "<index>" (all of that entry) as a pair of numbers. */
function parsePos(pos) {
  const [index, n] = pos.split('.')
  return [Number(index), n === undefined ? Number.POSITIVE_INFINITY : Number(n)]
}

function isAfter(pos, cursor) {
  if (cursor === undefined) return true
  const [a, b] = [parsePos(pos), parsePos(cursor)]
  return a[0] !== b[0] ? a[0] > b[0] : a[1] > b[1]
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  const query = lastPos === undefined ? '' : `?after=${encodeURIComponent(lastPos)}`
  const ws = new WebSocket(`${scheme}//${location.host}${actorPath}/ws${query}`)
  socket = ws
  ws.onmessage = (m) => {
    if (socket === ws) onFrame(JSON.parse(m.data))
  }
  ws.onclose = (e) => {
    if (socket !== ws) return
    setState('reconnecting', `reconnecting (closed ${e.code})`)
    setTimeout(connect, reconnectMs)
    reconnectMs = Math.min(reconnectMs * 2, RECONNECT_MS_MAX)
  }
}

function onFrame(frame) {
  if (frame.ready) {
    if (lastPos === undefined) lastPos = frame.pos
    reconnectMs = RECONNECT_MS_MIN
    setState('live')
  } else if (frame.event !== undefined) {
    // The server sends each position once and in order; the check keeps a resume from repeating.
    if (!isAfter(frame.pos, lastPos)) return
    lastPos = frame.pos
    show(frame.encoding === 'base64' ? fromBase64(frame.event) : frame.event)
  } else if (frame.error) {
    if (frame.error === 'ACTORMESH_EVENTS_GONE') {
      // The node's buffer no longer reaches back to lastPos: start afresh and say so.
      lastPos = undefined
      showLine('other', 'some messages were missed while disconnected')
    }
    notice(`${frame.error}: ${frame.message}`)
  }
}

function fromBase64(text) {
  return new TextDecoder().decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)))
}

/** Shows one broadcast of the chat actor: a post, a join, or (unknown) its text. */
function show(text) {
  let msg
  try {
    msg = JSON.parse(text)
  } catch {
    msg = undefined
  }
  if (msg?.type === 'post') {
    const li = document.createElement('li')
    li.className = 'post'
    li.dataset.seq = String(msg.seq)
    const from = document.createElement('span')
    from.className = 'from'
    from.textContent = msg.from
    const body = document.createElement('span')
    body.className = 'text'
    body.textContent = msg.text
    li.append(from, body)
    append(li)
  } else if (msg?.type === 'join') {
    showLine('join', `${msg.name} joined`)
  } else {
    showLine('other', text)
  }
}

function showLine(className, text) {
  const li = document.createElement('li')
  li.className = className
  li.textContent = text
  append(li)
}

function append(li) {
  const list = el.messages
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4
  list.append(li)
  while (list.children.length > MESSAGES_MAX) list.firstElementChild.remove()
  if (atBottom) list.scrollTop = list.scrollHeight
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Calls a method of the room over HTTP; retries 503 answers and network failures with one key. */
async function callRoom(method, body, contentType) {
  const key = newKey()
  for (let attempt = 1; ; attempt++) {
    let res
    try {
      res = await fetch(`${actorPath}/${method}`, {
        method: 'POST',
        headers: { 'content-type': contentType, 'idempotency-key': key },
        body,
      })
    } catch (e) {
      if (attempt >= CALL_ATTEMPTS_MAX) throw new Error(`Cannot ${method}: ${e.message}`)
      await sleep(500)
      continue
    }
    if (res.ok) return res.text()
    const answer = await res.json().catch(() => ({ code: res.status, message: res.statusText }))
    if (res.status !== 503 || attempt >= CALL_ATTEMPTS_MAX)
      throw new Error(`Cannot ${method}: ${answer.code}: ${answer.message}`)
    await sleep(Number(res.headers.get('retry-after') || 0.5) * 1000)
  }
}

async function send(event) {
  event.preventDefault()
  const name = el.name.value.trim()
  const text = el.text.value
  if (name === '' || text.trim() === '') return
  try {
    // The chat actor takes posts only from members; joining again is harmless.
    if (joinedAs !== name) {
      await callRoom('join', name, 'text/plain; charset=utf-8')
      joinedAs = name
    }
    await callRoom('post', JSON.stringify({ from: name, text }), 'application/json')
    if (el.text.value === text) el.text.value = ''
    notice('')
  } catch (e) {
    notice(e.message)
  }
}

el.room.textContent = room
document.title = `${room} · ActorMesh chat`
el.name.value = params.get('name') || ''
el.compose.addEventListener('submit', send)
connect()
