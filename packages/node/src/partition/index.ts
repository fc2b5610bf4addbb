export {
  PartitionCommandError,
  PartitionReplica,
  PartitionSnapshotUnsupportedError,
  decodePartitionCommand,
  encodePartitionCommand,
  proposeIndexCommand,
  proposePartitionWrite,
  type IndexCommandResult,
  type PartitionCommand,
  type PartitionReplicaOptions,
} from './partition-replica.ts';
