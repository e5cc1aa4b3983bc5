/**
 * The public face of `node/`: the mesh node. So far: the libp2p host and the per-peer frame
 * links that the Raft transport and request forwarding ride on.
 */

export {
  Catalog,
  type CatalogCommand,
  type CatalogNamespace,
  type CatalogNode,
  type CatalogResult,
  encodeCommand,
  NAMESPACE_NAME,
  SYSTEM_GROUP,
  validateCommand,
} from './catalog.js'
export { type MemberChange, type MemberInfo, Membership, type MembershipOptions } from './membership.js'
export { type MeshNode, type MeshNodeConfig, startMeshNode } from './mesh-node.js'
export { createHost, type Host, type HostOptions, type HostServices } from './p2p/host.js'
export { LINK_PROTOCOL, type LinkCounters, type LinkOptions, PeerLinks } from './p2p/links.js'
export { loadOrCreatePeerKey, peerKeyPath } from './p2p/peer-key.js'
export { SeedDialer } from './p2p/seeds.js'
export {
  balanceLeaders,
  type NodeView,
  pickReplicas,
  type RepairStep,
  type ReplicaSet,
  repairStep,
  type Transfer,
} from './placement.js'
export { Channel, LinkRaftTransport, type RaftTransportCounters, validateFrame } from './raft-transport.js'
export { Rpc, RpcError, type RpcHandler, type RpcOptions } from './rpc.js'
export { SYSTEM_VOTERS_MAX, type SystemOptions, SystemService } from './system.js'
