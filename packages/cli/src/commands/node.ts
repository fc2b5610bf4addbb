import { startStorageNode } from '@shoal/node';
import type { AdmissionLimits, StorageNodeOptions } from '@shoal/node';
import { createLogger, type LogLevel } from '../log.ts';
import { parseHostPort } from '../addresses.ts';
import { reportListening, stopOnSignal } from '../lifecycle.ts';
import { createProcessMetrics } from '../ops/metrics.ts';
import { startOpsServer } from '../ops/ops-server.ts';
import { storageNodeMetricSource } from '../ops/node-metrics.ts';

/** `shoal node`: one storage node process (partition replicas, and a meta group member if it is a meta peer). */

export interface NodeCommandOptions {
  nodeId: number;
  listen: string;
  dataDir: string;
  metaPeers: { nodeId: number; address: string }[];
  advertise?: string;
  opsHost: string;
  opsPort: number;
  defaultPartitions?: number;
  /** Per-partition admission limits; default DynamoDB's (3,000 read / 1,000 write units a second, 30 s burst). */
  admissionLimits?: Partial<AdmissionLimits>;
  /** GSI back-pressure (StorageNodeOptions.indexOutboxLimit); default 100,000 records. */
  indexOutboxLimit?: number;
  /** TEST ONLY (`--enable-fault-injection`, hidden): FaultInjectionService for `shoal chaos`. */
  enableFaultInjection?: boolean;
  /** The cluster's split policy (meta peers); default: split at 512 MiB, or after 10 s at half the unit limits. */
  splitting?: StorageNodeOptions['splitting'];
  /** Between measures of the sizes of the partitions led here; default 30,000 ms. */
  sizeMeasureIntervalMs?: number;
  /** Raft log compaction (StorageNodeOptions.logCompaction; `every: 0` turns it off). */
  logCompaction?: StorageNodeOptions['logCompaction'];
  /** StorageNodeOptions.quiesceIdleGroups. */
  quiesceIdleGroups?: boolean;
  /** The Raft tick and election timeout in ticks (StorageNodeOptions.tickMs / electionTick). */
  raftTiming?: { tickMs: number; electionTick: number };
  /** Items one chunk of a GSI backfill walks at most (StorageNodeOptions.indexBackfillChunk; default 1,000, and 1 MiB). */
  indexBackfillChunkItems?: number;
  /** Lowest level logged (default: SHOAL_LOG_LEVEL, else info). */
  logLevel?: LogLevel;
}

/** The node's numbers that count events; the others (ready, map version, groups, leaders, replicas) are levels. */
const NODE_COUNTERS: Parameters<typeof storageNodeMetricSource>[2] = [
  'raftRounds',
  'raftEntriesApplied',
  'raftPersistCalls',
  'raftLeadersElected',
  'raftLeadersLost',
  'raftTickStalls',
  'raftEmptyAppendsHeld',
  'raftEmptyAppendsSuperseded',
  'raftLogBatches',
  'raftLogSyncedBatches',
  'transportMessagesSent',
  'transportMessagesReceived',
  'transportBytesSent',
  'transportBytesReceived',
  'transportStreamFailures',
  'partitionWrites',
  'partitionConsistentReads',
  'partitionEventualReads',
  'partitionReadsWaited',
  'partitionReadsReplicaBehind',
  'partitionRequestsRefused',
  'replicasCreated',
  'replicasRemoved',
  'membershipChanges',
  'heartbeatsSent',
  'heartbeatFailures',
  'mapUpdates',
  'snapshotsSent',
  'snapshotSendFailures',
  'snapshotsReceived',
  'snapshotsRestored',
  'splitFailures',
  'hotKeysReported',
  'indexRecordsShipped',
  'indexRecordsDropped',
  'indexShipCallsFailed',
  'indexBacklogThrottledWrites',
  'indexEntryCallsThrottled',
  'indexEntriesApplied',
  'indexEntriesSkipped',
  'indexBackfillChunks',
  'indexBackfillItems',
  'indexBackfillsOfDeletedIndexes',
  'indexBackfillPauses',
  'indexOutboxMoveSteps',
  'indexOutboxRecordsMoved',
  'indexOutboxMovesEnded',
];

export async function runNode(options: NodeCommandOptions): Promise<void> {
  const log = createLogger({ role: 'node', nodeId: options.nodeId }, { minLevel: options.logLevel });
  const { host, port } = parseHostPort(options.listen);
  const node = await startStorageNode({
    nodeId: options.nodeId,
    dataDir: options.dataDir,
    host,
    port,
    advertiseAddress: options.advertise,
    metaPeers: options.metaPeers,
    defaultPartitions: options.defaultPartitions,
    load: { limits: options.admissionLimits, sizeIntervalMs: options.sizeMeasureIntervalMs },
    splitting: options.splitting,
    logCompaction: options.logCompaction,
    quiesceIdleGroups: options.quiesceIdleGroups === true,
    indexOutboxLimit: options.indexOutboxLimit,
    tickMs: options.raftTiming?.tickMs,
    electionTick: options.raftTiming?.electionTick,
    faultInjection: options.enableFaultInjection === true,
    ...(options.indexBackfillChunkItems === undefined ? {} : { indexBackfillChunk: { maxItems: options.indexBackfillChunkItems, maxBytes: 1024 * 1024 } }),
    log: log.child({ component: 'storage-node' }),
  });
  let ops;
  try {
    ops = await startOpsServer({
      host: options.opsHost,
      port: options.opsPort,
      readiness: () => node.readiness(),
      health: () => node.health(),
      metrics: createProcessMetrics([storageNodeMetricSource(() => node.metrics(), options.nodeId, NODE_COUNTERS)]),
    });
  } catch (error) {
    await node.close();
    throw error;
  }
  log.info('listening', { address: node.address, opsPort: ops.port, pid: process.pid });
  reportListening({ address: node.address, opsPort: ops.port });
  stopOnSignal(log, async () => {
    await ops.close();
    await node.close();
  });
}
