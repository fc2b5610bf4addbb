export {
  PartitionCommandError,
  PartitionReplica,
  PartitionSnapshotUnsupportedError,
  encodePartitionWrite,
  proposePartitionWrite,
} from './partition-replica.ts';
