import { connectCluster, startRouter } from '@shoal/router';
import type { Credentials } from '@shoal/router';
import { createLogger, type LogLevel } from '../log.ts';
import { reportListening, stopOnSignal } from '../lifecycle.ts';
import { createProcessMetrics } from '../ops/metrics.ts';
import { startOpsServer } from '../ops/ops-server.ts';
import { timedPartitionClient } from '../ops/partition-metrics.ts';
import { requestMetrics } from '../ops/request-metrics.ts';

/** `shoal router`: the DynamoDB HTTP API over the cluster the meta group describes. */

export interface RouterCommandOptions {
  meta: string[];
  host: string;
  port: number;
  opsHost: string;
  opsPort: number;
  credentials?: Credentials[];
  /** Routers of the cluster: each admits this share of a PROVISIONED table's throughput. Default 1. */
  routers?: number;
  /** Number of this router among those of one `shoal dev`, for its log lines. */
  routerId?: number;
  /** Lowest level logged (default: SHOAL_LOG_LEVEL, else info). */
  logLevel?: LogLevel;
}

export async function runRouter(options: RouterCommandOptions): Promise<void> {
  const log = createLogger({ role: 'router', ...(options.routerId === undefined ? {} : { routerId: options.routerId }) }, { minLevel: options.logLevel });
  const cluster = await connectCluster({ metaAddresses: options.meta, routers: options.routers, log: log.child({ component: 'cluster-client' }) });
  const timed = timedPartitionClient(cluster.partitions);
  const requests = requestMetrics();
  const metrics = createProcessMetrics([{ prefix: 'shoal_router', read: () => cluster.metrics(), series: () => [...timed.series(), ...requests.series()] }]);
  let router;
  let ops;
  try {
    router = await startRouter({
      partitions: timed.partitions,
      catalog: cluster.catalog,
      host: options.host,
      port: options.port,
      credentials: options.credentials,
      onRequest: requests.observe,
    });
    try {
      ops = await startOpsServer({
        host: options.opsHost,
        port: options.opsPort,
        readiness: () => ({ ready: cluster.isReady(), waitingFor: 'the partition map' }),
        metrics,
      });
    } catch (error) {
      await router.close();
      throw error;
    }
  } catch (error) {
    await cluster.close();
    throw error;
  }
  const endpoint = `http://${options.host}:${router.port}`;
  log.info('listening', { endpoint, opsPort: ops.port, pid: process.pid });
  reportListening({ address: endpoint, opsPort: ops.port });
  const started = { router, ops };
  stopOnSignal(log, async () => {
    await started.ops.close();
    await started.router.close();
    await cluster.close();
  });
}
