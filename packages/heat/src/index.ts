/** @shoal/heat — the partition heat tool: a workload, a live heat map of the partitions, an HTML report. */
export { main } from './main.ts';
export { runHeat, describeRun, type HeatIo, type HeatResult } from './run.ts';
export { parseHeatArgs, parseTime, USAGE, WORKLOADS, type HeatOptions, type WorkloadKind } from './options.ts';
export { Workload, Zipfian, type PlannedRequest, type RequestKey } from './workload.ts';
export { ClusterWatcher, changes, partitionsFromStatus, utilization, type HeatEvent, type HeatSnapshot, type PartitionHeat } from './watch.ts';
export { rangeLabel, renderFrame, renderLine, type Frame } from './terminal.ts';
export { renderReport, heatColour, type ReportInput } from './report.ts';
export { LatencyHistogram } from './latency.ts';
export type { IntervalFigures, RunSummary } from './figures.ts';
