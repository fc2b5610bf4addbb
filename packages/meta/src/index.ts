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
  DEFAULT_SPLIT_POLICY,
  DEFAULT_SPLIT_SIZE_BYTES,
  hashWidth,
  HOT_KEY_SHARE,
  hotKeyOf,
  isSplitSize,
  MAX_SPANNING_SHARE,
  MAX_SPLIT_SIZE_BYTES,
  middleSplitKey,
  MIN_SAMPLED_KEYS,
  planSplits,
  SPLIT_TAGS,
  tableSplitPolicy,
  utilization,
  type PartitionLoadReport,
  type SampledKeyLoad,
  type SplitDecision,
  type SplitPlan,
  type SplitPlanInput,
  type SplitPolicy,
  type SplitReason,
} from './splits.ts';
