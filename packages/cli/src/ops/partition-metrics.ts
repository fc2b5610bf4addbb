import type { PartitionClient } from '@shoal/model';
import { CountedCounter, CountedHistogram } from './counted-metrics.ts';
import type { CountedBuckets, CountedValue } from './counted-metrics.ts';
import type { Series } from './metrics.ts';

/**
 * A router's partition requests, timed: the PartitionClient the DynamoDB front end calls, wrapped to
 * observe each call's duration and failures by operation (write, get, readRange, ...). One DynamoDB
 * request makes one or more of these (a Query over several partitions, a batch).
 */

/** From 1 ms (a local hop) to 10 s (the retry budget of a call that waits out an election). */
export const BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface TimedPartitionClient {
  readonly partitions: PartitionClient;
  /** The timings and failures counted so far, for createProcessMetrics (a source's `series`). */
  series(): Series[];
}

export function timedPartitionClient(partitions: PartitionClient): TimedPartitionClient {
  const duration = new CountedHistogram(
    'shoal_router_partition_request_duration_seconds',
    'Duration of the partition requests of DynamoDB requests, from the router, retries included',
    'operation',
    BUCKETS_SECONDS,
  );
  const failures = new CountedCounter(
    'shoal_router_partition_request_errors_total',
    'Partition requests that failed (including DynamoDB errors such as a failed condition)',
    ['operation'],
  );
  /** One operation's counts, resolved once here rather than by label on every call. */
  const timer = (operation: string): (<T>(call: () => Promise<T>) => Promise<T>) => {
    const buckets: CountedBuckets = duration.labels(operation);
    const failed: CountedValue = failures.labels(operation);
    return async (call) => {
      const started = performance.now();
      try {
        return await call();
      } catch (error) {
        failed.inc();
        throw error;
      } finally {
        buckets.observe((performance.now() - started) / 1_000);
      }
    };
  };
  const write = timer('write');
  const get = timer('get');
  const readRange = timer('readRange');
  const statistics = timer('statistics');
  const backfillIndex = timer('backfillIndex');
  const dropIndex = timer('dropIndex');
  const dropTable = timer('dropTable');
  return {
    partitions: {
      write: (request) => write(() => partitions.write(request)),
      get: (request, options) => get(() => partitions.get(request, options)),
      readRange: (request, options) => readRange(() => partitions.readRange(request, options)),
      statistics: (table, indexName) => statistics(() => partitions.statistics(table, indexName)),
      backfillIndex: (table, indexName) => backfillIndex(() => partitions.backfillIndex(table, indexName)),
      dropIndex: (table, indexName) => dropIndex(() => partitions.dropIndex(table, indexName)),
      dropTable: (table) => dropTable(() => partitions.dropTable(table)),
    },
    series: () => [duration.series(), failures.series()],
  };
}
