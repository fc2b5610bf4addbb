import type { PartitionClient, TableCatalog } from '@shoal/model';
import { createEngineContext } from './dispatch.ts';
import type { Credentials } from './auth.ts';
import type { RequestInfo } from './request.ts';
import { startHttpFrontEnd, type RequestObserver } from './server.ts';
import { backfill } from './tables.ts';
import { startTtlSweeper } from './ttl.ts';

export type { EngineContext, OperationHandler } from './operation.ts';
export type { Credentials } from './auth.ts';
export type { RequestObserver } from './server.ts';

export interface RouterOptions {
  partitions: PartitionClient;
  catalog: TableCatalog;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8000; 0 lets the OS choose. */
  port?: number;
  /** Wall clock in milliseconds (default Date.now); tests move it to expire TTL items. */
  now?: () => number;
  /** Pause between TTL sweeps (default 10 s); 0 turns the timer off, leaving `sweepTtl`. */
  ttlSweepIntervalMs?: number;
  /** Region in ARNs and the GET / answer (default us-east-1). */
  region?: string;
  /**
   * Accepted credentials. When given, every request must carry a valid SigV4 signature by one of
   * them; when absent, requests are not authenticated at all.
   */
  credentials?: Credentials[];
  /**
   * Called once for each request naming a DynamoDB operation Shoal serves, when it is answered:
   * its time in seconds and, for an error answer, DynamoDB's error type. Runs on the request path:
   * keep it cheap.
   */
  onRequest?: RequestObserver;
}

export interface Router {
  port: number;
  /** Runs one TTL sweep now; resolves to the number of expired items deleted. */
  sweepTtl(): Promise<number>;
  /** Stops accepting requests, waits for those in flight and for background work. */
  close(): Promise<void>;
}

const DEFAULT_TTL_SWEEP_INTERVAL_MS = 10_000;

/** A one-at-a-time lock: each piece of work starts when the previous one has settled. */
function createSerialLock(): RequestInfo['tableLock'] {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const result = tail.then(work, work);
    tail = result.catch(() => undefined);
    return result;
  };
}

/** Starts the DynamoDB HTTP API over the given partitions and catalog. */
export async function startRouter(options: RouterOptions): Promise<Router> {
  const now = options.now ?? Date.now;
  const region = options.region ?? 'us-east-1';
  const host = options.host ?? '127.0.0.1';
  const ctx = createEngineContext(options.catalog, options.partitions, now);
  const pending = new Set<Promise<void>>();
  const tableLock = createSerialLock();
  const closing = new AbortController();
  const background = (work: (stop: AbortSignal) => Promise<void>): void => {
    const task = work(closing.signal)
      .catch((error: unknown) => console.error('shoal router: background task failed:', error))
      .finally(() => pending.delete(task));
    pending.add(task);
  };

  const http = await startHttpFrontEnd({
    ctx,
    host,
    port: options.port ?? 8000,
    region,
    services: { region, tableLock, background },
    onRequest: options.onRequest,
    credentials:
      options.credentials === undefined
        ? undefined
        : new Map(options.credentials.map((credential) => [credential.accessKeyId, credential.secretAccessKey])),
  });
  // Background work starts only once the port is ours, so a failed start leaves nothing running.
  // Index backfills interrupted by a restart start over (backfilling an entry twice is harmless).
  for (const record of await options.catalog.list()) {
    for (const indexName of record.backfilling ?? []) {
      background((stop) => backfill(ctx, record.schema, indexName, { tableLock }, stop));
    }
  }
  const sweeper = startTtlSweeper({
    catalog: options.catalog,
    partitions: options.partitions,
    now,
    intervalMs: options.ttlSweepIntervalMs ?? DEFAULT_TTL_SWEEP_INTERVAL_MS,
  });
  return {
    port: http.port,
    sweepTtl: () => sweeper.sweepOnce(),
    async close(): Promise<void> {
      closing.abort();
      await http.close();
      await sweeper.stop();
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
export { CLIENT_TOKEN_TABLE } from './client-request-tokens.ts';
export { connectCluster } from './cluster/index.ts';
export type { ClusterBackend, ClusterOptions, ClusterClientMetrics, ClusterLogger, RetryPolicy } from './cluster/index.ts';
