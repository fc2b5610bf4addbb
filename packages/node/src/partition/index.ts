export {
  PartitionCommandError,
  PartitionReplica,
  PartitionSnapshotUnsupportedError,
  decodePartitionCommand,
  encodePartitionCommand,
  proposeIndexCommand,
  proposePartitionWrite,
  type IndexCommand,
  type IndexCommandResult,
  type PartitionCommand,
  type PartitionReplicaOptions,
} from './partition-replica.ts';
