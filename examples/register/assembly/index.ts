// Register actor (used by the chaos linearizability tests): read, write, compare-and-set.
// cas payload: {"expect": "<old>" | null, "value": "<new>"}; replies {"ok":true|false,"value":...}.
import { fail, getString, JsonObject, jsonField, jsonQuote, jsonString, on, onReadonly, setString, str, utf8 } from '../../../actors/sdk/assembly/index'
export { abi_version, alloc, handle, readonly_methods } from '../../../actors/sdk/assembly/index'

function current(): string {
  const v = getString('value')
  return v === null ? 'null' : jsonQuote(v)
}

function read(payload: Uint8Array): Uint8Array {
  const v = getString('value')
  return utf8(v === null ? '' : v)
}

function write(payload: Uint8Array): Uint8Array {
  setString('value', str(payload))
  return utf8('ok')
}

function cas(payload: Uint8Array): Uint8Array {
  const json = str(payload)
  const expectRaw = jsonField(json, 'expect')
  const value = jsonString(json, 'value')
  if (expectRaw === null || value === null) {
    fail("cas needs 'expect' and 'value'")
    return new Uint8Array(0)
  }
  const expect: string | null = expectRaw == 'null' ? null : jsonString(json, 'expect')
  const stored = getString('value')
  let matches = false
  if (expect === null) matches = stored === null
  else if (stored !== null) matches = stored == expect
  if (matches) setString('value', value)
  const out = new JsonObject().bool('ok', matches)
  return utf8(out.raw('value', matches ? jsonQuote(value) : current()).toString())
}

onReadonly('read', read)
on('write', write)
on('cas', cas)
