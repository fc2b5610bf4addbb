/** @shoal/node — the storage node. */
export {
  RaftLogStore,
  type GroupPersist,
  type NewGroup,
  type RaftLogStoreOptions,
  type RaftLogStoreStats,
  type RecoveredGroup,
} from './raft-log/store.ts';
export type { GroupLogStorage } from './raft-log/group-log.ts';
export { RaftLogCorruptionError, type GroupId } from './raft-log/codec.ts';
export {
  RaftTransport,
  TransportMetrics,
  type GroupMessage,
  type RaftTransportOptions,
  type SnapshotData,
  type SnapshotOutcome,
  type StagedSnapshotData,
  type TransportLogEntry,
} from './transport/raft-transport.ts';
export { NetworkFaults, type PartitionDirection } from './transport/faults.ts';
export * from './host/index.ts';
export * from './partition/index.ts';
export * from './server/index.ts';
export * from './meta-group/index.ts';
export { MetaClient, type MetaClientOptions, type MetaPeer, type MetaServiceClient } from './cluster/meta-client.ts';
export { ClusterView } from './cluster/cluster-view.ts';
export {
  ReplicaReconciler,
  type PartitionMapView,
  type PartitionReplicas,
  type ReconcilerStats,
  type ReplicaReconcilerOptions,
} from './cluster/replica-reconciler.ts';
export { stderrLog, type LogFields, type NodeLog } from './cluster/log.ts';
export { startStorageNode, type RaftGroupMetrics, type StorageNode, type StorageNodeMetrics, type StorageNodeOptions, type StorageNodeReadiness, type StorageNodeHealth } from './storage-node.ts';
export * from './load/index.ts';
