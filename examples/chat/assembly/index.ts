// Chat room actor: join (payload: name), post ({"from": name, "text": text}), history (the last
// messages as a JSON array). Each post is broadcast to the room's subscribers. History keeps the
// last HISTORY_MAX messages; older ones are deleted so the state stays bounded.
import {
  broadcastString,
  del,
  fail,
  getI64,
  getString,
  JsonObject,
  jsonString,
  list,
  now,
  on,
  onReadonly,
  setI64,
  setString,
  str,
  utf8,
} from '../../../actors/sdk/assembly/index'
export { abi_version, alloc, handle, readonly_methods } from '../../../actors/sdk/assembly/index'

const HISTORY_MAX: i64 = 50

function seqKey(seq: i64): string {
  let digits = seq.toString()
  while (digits.length < 10) digits = '0' + digits
  return 'msg/' + digits
}

function join(payload: Uint8Array): Uint8Array {
  const name = str(payload)
  if (name.length == 0) {
    fail('join needs a name')
    return new Uint8Array(0)
  }
  const fresh = getString('member/' + name) === null
  if (fresh) {
    setString('member/' + name, '1')
    broadcastString(new JsonObject().str('type', 'join').str('name', name).toString())
  }
  return utf8(fresh ? 'joined' : 'already a member')
}

function post(payload: Uint8Array): Uint8Array {
  const json = str(payload)
  const from = jsonString(json, 'from')
  const text = jsonString(json, 'text')
  if (from === null || text === null) {
    fail("post needs 'from' and 'text'")
    return new Uint8Array(0)
  }
  if (getString('member/' + from) === null) {
    fail("'" + from + "' has not joined")
    return new Uint8Array(0)
  }
  const seq = getI64('seq') + 1
  setI64('seq', seq)
  const message = new JsonObject().str('type', 'post').num('seq', <f64>seq).str('from', from).str('text', text).num('at', now()).toString()
  setString(seqKey(seq), message)
  if (seq > HISTORY_MAX) del(seqKey(seq - HISTORY_MAX))
  broadcastString(message)
  return utf8(seq.toString())
}

function history(payload: Uint8Array): Uint8Array {
  const entries = list('msg/')
  const parts = new Array<string>()
  for (let i = 0; i < entries.length; i++) parts.push(str(entries[i].value))
  return utf8('[' + parts.join(',') + ']')
}

on('join', join)
on('post', post)
onReadonly('history', history)
