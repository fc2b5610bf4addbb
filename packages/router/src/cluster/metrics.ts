/** The cluster client's counters and log sink. */

/** Structured log lines (one object per line); the CLI's logger fits. */
export interface ClusterLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Events since the client started (names ending in Total are counters, as Prometheus has it). */
export interface ClusterCounters {
  nodeRequestsTotal: number;
  nodeRetriesTotal: number;
  notLeaderRedirectsTotal: number;
  staleEpochRedirectsTotal: number;
  keyOutOfRangeRedirectsTotal: number;
  partitionNotFoundTotal: number;
  unreachableNodeTotal: number;
  nodeMapBehindTotal: number;
  /** Eventual reads a replica refused for not having applied this router's own writes yet (sent again to the leader). */
  replicaBehindRedirectsTotal: number;
  ambiguousWritesTotal: number;
  exhaustedRetriesTotal: number;
  metaRequestsTotal: number;
  mapRefreshesTotal: number;
  watchStreamsTotal: number;
}

export function zeroCounters(): ClusterCounters {
  return {
    nodeRequestsTotal: 0,
    nodeRetriesTotal: 0,
    notLeaderRedirectsTotal: 0,
    staleEpochRedirectsTotal: 0,
    keyOutOfRangeRedirectsTotal: 0,
    partitionNotFoundTotal: 0,
    unreachableNodeTotal: 0,
    nodeMapBehindTotal: 0,
    replicaBehindRedirectsTotal: 0,
    ambiguousWritesTotal: 0,
    exhaustedRetriesTotal: 0,
    metaRequestsTotal: 0,
    mapRefreshesTotal: 0,
    watchStreamsTotal: 0,
  };
}

/** What `ClusterBackend.metrics()` reports: the counters and the current levels, all plain numbers. */
export interface ClusterClientMetrics extends ClusterCounters {
  /** 1 when the client holds a partition map, else 0. */
  ready: number;
  mapVersion: number;
  partitions: number;
  nodes: number;
  tables: number;
  /** Addresses the client holds a gRPC channel to. */
  channels: number;
  /** Calls to nodes carrying several single-item writes (WriteMany), and the writes they carried. */
  coalescedWriteCallsTotal: number;
  coalescedWritesTotal: number;
  /** Single-item writes sent alone (Write). */
  singleWriteCallsTotal: number;
  /** The same for GetItem's gets (GetMany, Get). */
  coalescedGetCallsTotal: number;
  coalescedGetsTotal: number;
  singleGetCallsTotal: number;
}
