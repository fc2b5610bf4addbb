/**
 * TEST ONLY: FaultInjectionService (proto/shoal/v1/fault.proto), added to a storage node's server
 * only when the node is started with fault injection enabled (`shoal node --enable-fault-injection`);
 * without it the service does not exist and every call answers UNIMPLEMENTED. It drives the node's
 * NetworkFaults (Raft traffic to and from peers), DiskFaults (its Raft log's writes), the requests its
 * partition service refuses (shipped GSI records: a GSI falling behind), and asks its Raft host for
 * leadership transfers, for `shoal chaos` and tests.
 */
import {
  DiskFault,
  FaultInjectionService,
  PartitionDirection,
  RpcError,
  Status,
  addService,
  type Server,
} from '@shoal/proto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { NodeId } from '@shoal/raft';
import type { FaultStateSchema } from '@shoal/proto';
import type { MultiRaftHost } from '../host/index.ts';
import type { PartitionServiceFaults } from './storage-node-server.ts';
import type { DiskFaults } from '../raft-log/disk-faults.ts';
import type { NetworkFaults, PartitionDirection as Direction } from '../transport/faults.ts';

export interface FaultInjectionDeps {
  nodeId: NodeId;
  network: NetworkFaults;
  disk: DiskFaults;
  partitionService: PartitionServiceFaults;
  host: MultiRaftHost;
  /** Every injected fault and heal is logged. */
  log(message: string, fields: Record<string, unknown>): void;
}

const DIRECTIONS: Record<number, Direction> = {
  [PartitionDirection.OUTBOUND]: 'outbound',
  [PartitionDirection.INBOUND]: 'inbound',
  [PartitionDirection.BOTH]: 'both',
};

const DISK_FAULTS = { none: DiskFault.NONE, slow: DiskFault.SLOW, full: DiskFault.FULL } as const;

/** Node ids other than this node's, or INVALID_ARGUMENT. */
function peersOf(peers: readonly bigint[], self: NodeId): NodeId[] {
  return peers.map((peer) => {
    if (peer < 1n || peer > BigInt(Number.MAX_SAFE_INTEGER)) throw new RpcError(Status.INVALID_ARGUMENT, `invalid node id ${peer}`);
    const id = Number(peer);
    if (id === self) throw new RpcError(Status.INVALID_ARGUMENT, `node ${self} names itself as a peer`);
    return id;
  });
}

export function addFaultInjectionService(server: Server, deps: FaultInjectionDeps): void {
  const { network, disk, partitionService, nodeId } = deps;
  const state = (): MessageInitShape<typeof FaultStateSchema> => ({
    droppedTo: network.droppedTo().map(BigInt),
    droppedFrom: network.droppedFrom().map(BigInt),
    disk: DISK_FAULTS[disk.mode],
    diskDelayMs: disk.delayMs,
    indexEntriesRefused: partitionService.refuseIndexEntries,
  });
  addService(server, FaultInjectionService, {
    partition: async (request) => {
      const direction = DIRECTIONS[request.direction];
      if (direction === undefined) throw new RpcError(Status.INVALID_ARGUMENT, 'a partition needs a direction');
      const peers = peersOf(request.peers, nodeId);
      for (const peer of peers) network.partition(peer, direction);
      deps.log('fault injected: network partition', { peers, direction });
      return state();
    },
    delay: async (request) => {
      const peers = peersOf(request.peers, nodeId);
      for (const peer of peers) network.delay(peer, request.delayMs);
      deps.log('fault injected: network delay', { peers, delayMs: request.delayMs });
      return state();
    },
    heal: async (request) => {
      const peers = peersOf(request.peers, nodeId);
      if (peers.length === 0) network.heal();
      for (const peer of peers) network.heal(peer);
      deps.log('network faults healed', { peers: peers.length === 0 ? 'all' : peers });
      return state();
    },
    setDiskFault: async (request) => {
      switch (request.fault) {
        case DiskFault.NONE:
          disk.heal();
          break;
        case DiskFault.SLOW:
          if (request.delayMs === 0) throw new RpcError(Status.INVALID_ARGUMENT, 'a slow disk needs delay_ms');
          disk.slow(request.delayMs);
          break;
        case DiskFault.FULL:
          disk.full();
          break;
        default:
          throw new RpcError(Status.INVALID_ARGUMENT, `unknown disk fault ${request.fault}`);
      }
      deps.log('disk fault set', { disk: disk.mode, delayMs: disk.delayMs });
      return state();
    },
    setIndexEntriesFault: async (request) => {
      partitionService.refuseIndexEntries = request.refuse;
      deps.log(request.refuse ? 'fault injected: index entries refused' : 'index entries taken again', {});
      return state();
    },
    transferLeadership: async (request) => {
      if (request.groupId > BigInt(Number.MAX_SAFE_INTEGER)) throw new RpcError(Status.INVALID_ARGUMENT, `invalid group id ${request.groupId}`);
      const groupId = Number(request.groupId);
      const [to] = peersOf([request.toNode], nodeId);
      if (!deps.host.hasGroup(groupId)) throw new RpcError(Status.NOT_FOUND, `node ${nodeId} hosts no replica of group ${groupId}`);
      if (deps.host.leaderOf(groupId) !== nodeId) throw new RpcError(Status.FAILED_PRECONDITION, `node ${nodeId} does not lead group ${groupId}`);
      deps.host.transferLeadership(groupId, to);
      deps.log('leadership transfer asked', { group: groupId, to });
      return {};
    },
  });
}
