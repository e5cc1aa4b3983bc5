// Counter actor: increment (by the decimal in the payload, default 1), get, and a durable alarm
// that resets the count (reset_at: payload is the time in ms).
import { getI64, on, onReadonly, setAlarm, setI64, str, utf8 } from '../../../actors/sdk/assembly/index'
export { abi_version, alloc, handle, readonly_methods } from '../../../actors/sdk/assembly/index'

function increment(payload: Uint8Array): Uint8Array {
  const by: i64 = payload.length > 0 ? I64.parseInt(str(payload)) : 1
  const value = getI64('count') + by
  setI64('count', value)
  return utf8(value.toString())
}

function get(payload: Uint8Array): Uint8Array {
  return utf8(getI64('count').toString())
}

function resetAt(payload: Uint8Array): Uint8Array {
  setAlarm(parseFloat(str(payload)))
  return utf8('ok')
}

function alarm(payload: Uint8Array): Uint8Array {
  setI64('count', 0)
  return utf8('0')
}

on('increment', increment)
onReadonly('get', get)
on('reset_at', resetAt)
on('alarm', alarm)
