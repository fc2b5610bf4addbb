/** @shoal/chaos — chaos runs against a real cluster: faults, a recorded history, a verdict. */
export { main } from './main.ts';
export { runChaos, type ChaosOptions, type ChaosResult } from './run.ts';
export { parseChaosArgs, parseDuration, parseFaults, USAGE } from './options.ts';
export { FAULT_KINDS, FAULT_GROUPS, planFaults, type FaultKind, type FaultRecord, type PlannedFault } from './faults.ts';
export type { ChaosReport } from './report.ts';
export type { Check } from './verdict.ts';
export type { Figures } from './figures.ts';
export { ChaosCluster, type ClusterOptions as ChaosClusterOptions } from './cluster.ts';
export { DynamoDbClient, type ClientOptions as DynamoDbClientOptions, type Outcome } from './dynamodb-client.ts';
