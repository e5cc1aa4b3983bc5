// List-append actor (used by the chaos lost-write tests): append a value, read the whole list.
// Items live under "item/<index, 10 digits>" so `list("item/")` returns them in order.
import { getI64, jsonQuote, list, on, onReadonly, setI64, setString, str, utf8 } from '../../../actors/sdk/assembly/index'
export { abi_version, alloc, handle, readonly_methods } from '../../../actors/sdk/assembly/index'

function itemKey(index: i64): string {
  let digits = index.toString()
  while (digits.length < 10) digits = '0' + digits
  return 'item/' + digits
}

function append(payload: Uint8Array): Uint8Array {
  const length = getI64('length')
  setString(itemKey(length), str(payload))
  setI64('length', length + 1)
  return utf8((length + 1).toString())
}

function read(payload: Uint8Array): Uint8Array {
  const items = list('item/')
  const parts = new Array<string>()
  for (let i = 0; i < items.length; i++) parts.push(jsonQuote(str(items[i].value)))
  return utf8('[' + parts.join(',') + ']')
}

on('append', append)
onReadonly('read', read)
