export { META_GROUP_ID, MetaReplica, type MetaOutcome, type MetaReplicaOptions, type MetaStateListener } from './meta-replica.ts';
export { addMetaServices, type MetaServiceDeps, type MetaServices } from './meta-services.ts';
export { PlacementDriver, type PlacementDriverOptions, type PlacementLogEntry, type PlacementRound } from './placement-driver.ts';
export { NodeReports, type NodeReport } from './node-reports.ts';
export { AutoSplitter, HotKeys, type AutoSplitStats, type AutoSplitterOptions, type HotKeyReport } from './auto-splitter.ts';
export { LeadershipTransfers, type LeadershipTransfer } from './leadership-transfers.ts';
export { PlacementPins } from './placement-pins.ts';
