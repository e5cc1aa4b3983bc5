/**
 * TCP with one socket write per sent message. Noise hands the TCP connection each encrypted
 * message as two buffers, its 2-byte length and the ciphertext, and `@libp2p/tcp` writes every
 * buffer of a message with its own `socket.write`: with `noDelay` that is two system calls and two
 * TCP segments, and the receiver often wakes up twice, once for the 2 bytes. Joining the buffers
 * first costs a copy of a few hundred bytes; the saved write costs ~19 µs of CPU on our VMs, and
 * every Raft message pays it on both ends.
 *
 * `joinedWritesTcp` wraps `tcp()` and gives the upgrader each new connection with its `sendData`
 * joining the buffers. It reaches no private state: `sendData` is the method through which every
 * `AbstractMultiaddrConnection` writes; a connection without one is left alone.
 */
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { type TCPComponents, type TCPOptions, tcp } from '@libp2p/tcp'
import { Uint8ArrayList } from 'uint8arraylist'

interface SendData {
  sendData(data: Uint8ArrayList): unknown
}

/** `tcp(init)` whose connections write each sent message with one socket write. */
export function joinedWritesTcp(init?: TCPOptions): (components: TCPComponents) => Transport {
  const factory = tcp(init)
  return (components) => {
    const transport = factory(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = (ma, options) => dial(ma, { ...options, upgrader: joiningUpgrader(options.upgrader) })
    transport.createListener = (options) =>
      createListener({ ...options, upgrader: joiningUpgrader(options.upgrader) })
    return transport
  }
}

/** The upgrader, handing every connection it upgrades through `joinWrites` first. */
function joiningUpgrader(upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get(target, property) {
      if (property === 'upgradeOutbound' || property === 'upgradeInbound') {
        const upgrade = target[property] as (maConn: MultiaddrConnection, opts: unknown) => Promise<unknown>
        return (maConn: MultiaddrConnection, opts: unknown) => upgrade.call(target, joinWrites(maConn), opts)
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/** Makes `maConn` join the buffers of each sent message into one before writing it. */
export function joinWrites(maConn: MultiaddrConnection): MultiaddrConnection {
  const conn = maConn as unknown as Partial<SendData>
  if (typeof conn.sendData !== 'function') return maConn
  const sendData = conn.sendData.bind(maConn)
  // `subarray()` of a list of one buffer is that buffer, not a copy.
  conn.sendData = (data: Uint8ArrayList) => sendData(new Uint8ArrayList(data.subarray()))
  return maConn
}
