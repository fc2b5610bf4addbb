/**
 * connectCluster: the PartitionClient and TableCatalog of a router over a Shoal cluster, for
 * `startRouter`, so that every DynamoDB operation works unchanged over the cluster.
 */
import type { PartitionClient, TableCatalog } from '@shoal/model';
import { ClusterCatalog } from './catalog.ts';
import { ChannelPool } from './channels.ts';
import { ClusterView } from './cluster-view.ts';
import { MetaClient } from './meta-client.ts';
import { zeroCounters, type ClusterClientMetrics, type ClusterLogger } from './metrics.ts';
import { ClusterPartitionClient } from './partition-client.ts';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.ts';
import type { TransactionCoordinatorOptions } from './transactions.ts';
import { TableThroughputGate } from './table-throughput.ts';

export type { ClusterClientMetrics, ClusterLogger } from './metrics.ts';
export type { RetryPolicy } from './retry.ts';
export type { TransactionCoordinatorOptions } from './transactions.ts';

export interface ClusterOptions {
  /** host:port of the meta peers (any of them; the client finds the leader). */
  metaAddresses: string[];
  log?: ClusterLogger;
  /** Partitions of a table this router creates; 0 or absent: the meta group's default. */
  initialPartitions?: number;
  /** Bounds of every retried call (default: DEFAULT_RETRY_POLICY, 64 attempts within 15 s). */
  retry?: Partial<RetryPolicy>;
  /** Deadline of one write or read sent to a node (default 10 s). */
  rpcTimeoutMs?: number;
  /** How long connectCluster waits for the first partition map (default 30 s). */
  startTimeoutMs?: number;
  /** How long CreateTable waits for the new table's partitions to have leaders (default 10 s). */
  tableReadyTimeoutMs?: number;
  /**
   * Routers sharing PROVISIONED tables' throughput: each admits 1/routers of it (default 1), with
   * `throughputBurstSeconds` of burst (default 300, DynamoDB's burst capacity); `region` names the
   * tables in throttling reasons.
   */
  routers?: number;
  throughputBurstSeconds?: number;
  region?: string;
  /** Transactions spanning partitions (two-phase commit): deadline, test fault points. */
  transactions?: TransactionCoordinatorOptions;
}

export interface ClusterBackend {
  partitions: PartitionClient;
  catalog: TableCatalog;
  metrics(): ClusterClientMetrics;
  /** True while the client holds a partition map. */
  isReady(): boolean;
  /** Stops the map watch and closes every channel. */
  close(): Promise<void>;
}

/** A write slower than this is reported as maybe applied: long enough for a loaded cluster's commit. */
const DEFAULT_RPC_TIMEOUT_MS = 10_000;
const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_TABLE_READY_TIMEOUT_MS = 10_000;

/**
 * Connects to the meta group and resolves once the first partition map has arrived (rejects after
 * `startTimeoutMs` without one), so that the router starts with its table catalog known.
 */
export async function connectCluster(options: ClusterOptions): Promise<ClusterBackend> {
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const counters = zeroCounters();
  const channels = new ChannelPool();
  const view = new ClusterView();
  const meta = new MetaClient({ addresses: options.metaAddresses, channels, policy, counters, log: options.log });
  const stop = new AbortController();
  const watching = meta.watch(view, stop.signal);

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    stop.abort();
    await watching;
    channels.close();
  };

  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), startTimeoutMs);
  });
  const gaveUp = await Promise.race([view.firstMap().then(() => false), timedOut]);
  clearTimeout(timer);
  if (gaveUp) {
    await close();
    throw new Error(`no partition map from the meta group (${options.metaAddresses.join(', ')}) within ${startTimeoutMs} ms`);
  }
  options.log?.info('connected to the cluster', { mapVersion: view.version, partitions: view.map.size, nodes: view.nodeCount, tables: view.tableCount });

  const partitions = new ClusterPartitionClient({
    view,
    meta,
    channels,
    policy,
    rpcTimeoutMs: options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS,
    counters,
    log: options.log,
    transactions: options.transactions,
  });
  return {
    partitions: new TableThroughputGate(partitions, {
      tableRecord: (name) => view.table(name),
      routers: options.routers,
      burstSeconds: options.throughputBurstSeconds,
      region: options.region,
    }),
    catalog: new ClusterCatalog({
      view,
      meta,
      initialPartitions: options.initialPartitions ?? 0,
      tableReady: (table, indexNames) => partitions.awaitLeaders(table, options.tableReadyTimeoutMs ?? DEFAULT_TABLE_READY_TIMEOUT_MS, indexNames),
      log: options.log,
    }),
    metrics: () => {
      const { writes, gets } = partitions.coalescing();
      return {
        ...counters,
        ready: view.hasMap && !closed ? 1 : 0,
        mapVersion: view.version,
        partitions: view.map.size,
        nodes: view.nodeCount,
        tables: view.tableCount,
        channels: channels.addresses,
        coalescedWriteCallsTotal: writes.coalescedCalls,
        coalescedWritesTotal: writes.coalescedRequests,
        singleWriteCallsTotal: writes.singleCalls,
        coalescedGetCallsTotal: gets.coalescedCalls,
        coalescedGetsTotal: gets.coalescedRequests,
        singleGetCallsTotal: gets.singleCalls,
      };
    },
    isReady: () => view.hasMap && !closed,
    close,
  };
}
