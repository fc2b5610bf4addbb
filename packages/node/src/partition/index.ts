export {
  PartitionCommandError,
  PartitionReplica,
  PartitionSnapshotUnsupportedError,
  decodePartitionCommand,
  encodePartitionCommand,
  proposeIndexCommand,
  proposePartitionSplit,
  proposePartitionWrite,
  SplitRefusedError,
  WriteOutOfRangeError,
  type AppliedSplit,
  type PartitionSplit,
  type SplitCommand,
  type SplitResult,
  type WriteOutOfRange,
  type IndexCommandResult,
  type PartitionCommand,
  type PartitionReplicaOptions,
} from './partition-replica.ts';
export {
  decodeTransactionCommand,
  proposeBeginTransaction,
  proposeDecideTransaction,
  proposePrepareTransaction,
  proposeResolveTransaction,
  type TransactionCommand,
} from './transaction-commands.ts';
export { TransactionResolver, type TransactionResolverOptions } from './transaction-resolver.ts';
