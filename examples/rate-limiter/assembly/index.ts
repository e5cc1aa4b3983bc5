// Token-bucket rate limiter: `take` (payload: tokens wanted, default 1) answers
// {"allowed":bool,"tokens":remaining}; the bucket refills at `rate` tokens per second up to
// `capacity`, both set with `configure` ({"capacity": n, "rate": r}; defaults 10 and 1).
// Time comes from the call's timestamp (`now`), so replays decide the same way.
import { getF64, JsonObject, jsonNumber, now, on, setF64, str, utf8 } from '../../../actors/sdk/assembly/index'
export { abi_version, alloc, handle } from '../../../actors/sdk/assembly/index'

function capacity(): f64 {
  return getF64('capacity', 10)
}

function rate(): f64 {
  return getF64('rate', 1)
}

function configure(payload: Uint8Array): Uint8Array {
  const json = str(payload)
  const c = jsonNumber(json, 'capacity')
  const r = jsonNumber(json, 'rate')
  if (!isNaN(c) && c > 0) setF64('capacity', c)
  if (!isNaN(r) && r >= 0) setF64('rate', r)
  return utf8(new JsonObject().num('capacity', capacity()).num('rate', rate()).toString())
}

function take(payload: Uint8Array): Uint8Array {
  const wanted: f64 = payload.length > 0 ? parseFloat(str(payload)) : 1
  const t = now()
  const last = getF64('last', t)
  let tokens = getF64('tokens', capacity())
  tokens = Math.min(capacity(), tokens + (Math.max(0, t - last) / 1000) * rate())
  const allowed = tokens >= wanted
  if (allowed) tokens -= wanted
  setF64('tokens', tokens)
  setF64('last', t)
  return utf8(new JsonObject().bool('allowed', allowed).num('tokens', Math.floor(tokens)).toString())
}

on('configure', configure)
on('take', take)
