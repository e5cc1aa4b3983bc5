import { assert } from './assert.js'
import { type ConfChange, ConfChangeType, type ConfState, type NodeId } from './types.js'

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Encodes a membership change as the data of a ConfChange entry: one type byte, the node id's
 * length (u16) and UTF-8 bytes, then the context. Plain bytes so the log stays self-describing.
 */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const node = textEncoder.encode(cc.node)
  if (node.byteLength > 0xffff)
    throw new RangeError(`Cannot encode conf change: node id is ${node.byteLength} bytes`)
  const context = cc.context ?? new Uint8Array()
  const out = new Uint8Array(3 + node.byteLength + context.byteLength)
  out[0] = cc.type
  out[1] = node.byteLength >> 8
  out[2] = node.byteLength & 0xff
  out.set(node, 3)
  out.set(context, 3 + node.byteLength)
  return out
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.byteLength < 3) throw new TypeError('Cannot decode conf change: entry is shorter than 3 bytes')
  const type = data[0]!
  if (
    type !== ConfChangeType.AddNode &&
    type !== ConfChangeType.RemoveNode &&
    type !== ConfChangeType.AddLearner
  ) {
    throw new TypeError(`Cannot decode conf change: unknown type ${type}`)
  }
  const length = (data[1]! << 8) | data[2]!
  if (data.byteLength < 3 + length) throw new TypeError('Cannot decode conf change: node id is truncated')
  const node = textDecoder.decode(data.subarray(3, 3 + length))
  const context = data.subarray(3 + length)
  return context.byteLength > 0 ? { type, node, context: context.slice() } : { type, node }
}

/** The membership after `cc` (thesis §4.1: one server at a time, so no joint configuration). */
export function applyToConf(conf: ConfState, cc: ConfChange): ConfState {
  assert(cc.node !== '', 'conf change without a node id')
  const without = (list: NodeId[]) => list.filter((id) => id !== cc.node)
  switch (cc.type) {
    case ConfChangeType.AddNode:
      return { voters: [...without(conf.voters), cc.node].sort(), learners: without(conf.learners) }
    case ConfChangeType.AddLearner:
      return { voters: without(conf.voters), learners: [...without(conf.learners), cc.node].sort() }
    default:
      return { voters: without(conf.voters), learners: without(conf.learners) }
  }
}
