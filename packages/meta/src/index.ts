/**
 * @shoal/meta — the meta group's state machine (tables, partition map, node membership) and the
 * placement driver's decisions, as pure functions. @shoal/node hosts them in the meta Raft group.
 */
export {
  applyMetaCommand,
  emptyMetaState,
  MetaCommandError,
  partitionList,
  placeableNodeIds,
  type MetaApplyResult,
  type MetaCommand,
  type MetaCommandType,
  type MetaErrorReason,
  type MetaState,
  type NodeRecord,
  type NodeState,
} from './state.ts';
export { encodeMetaSnapshot, decodeMetaSnapshot, encodeMetaCommand, decodeMetaCommand } from './codec.ts';
export { placeReplicas, rankNodes, rendezvousScore } from './rendezvous.ts';
export {
  commandForAction,
  planDrain,
  planLiveness,
  planPlacement,
  planRebalance,
  planRepairs,
  replicasAfter,
  type PlacementAction,
  type PlacementOptions,
  type PlacementReason,
} from './placement.ts';
export {
  chooseSplitKey,
  hashWidth,
  middleSplitKey,
  planSplits,
  splitCommand,
  type PartitionLoadReport,
  type SampledKey,
  type SplitDecision,
  type SplitReason,
  type SplitThresholds,
} from './splits.ts';
