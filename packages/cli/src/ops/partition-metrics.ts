import type { PartitionClient } from '@shoal/model';
import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';

/**
 * A router's partition requests, timed: the PartitionClient the DynamoDB front end calls, wrapped to
 * observe each call's duration and failures by operation (write, get, readRange, ...). One DynamoDB
 * request makes one or more of these (a Query over several partitions, a batch).
 */

/** From 1 ms (a local hop) to 10 s (the retry budget of a call that waits out an election). */
export const BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function timedPartitionClient(partitions: PartitionClient, registry: Registry): PartitionClient {
  const duration = new Histogram({
    name: 'shoal_router_partition_request_duration_seconds',
    help: 'Duration of the partition requests of DynamoDB requests, from the router, retries included',
    labelNames: ['operation'],
    buckets: BUCKETS_SECONDS,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'shoal_router_partition_request_errors_total',
    help: 'Partition requests that failed (including DynamoDB errors such as a failed condition)',
    labelNames: ['operation'],
    registers: [registry],
  });
  const timed = async <T>(operation: string, call: () => Promise<T>): Promise<T> => {
    const done = duration.startTimer({ operation });
    try {
      return await call();
    } catch (error) {
      failures.inc({ operation });
      throw error;
    } finally {
      done();
    }
  };
  return {
    write: (request) => timed('write', () => partitions.write(request)),
    get: (request, options) => timed('get', () => partitions.get(request, options)),
    readRange: (request, options) => timed('readRange', () => partitions.readRange(request, options)),
    statistics: (table, indexName) => timed('statistics', () => partitions.statistics(table, indexName)),
    backfillIndex: (table, indexName) => timed('backfillIndex', () => partitions.backfillIndex(table, indexName)),
    dropIndex: (table, indexName) => timed('dropIndex', () => partitions.dropIndex(table, indexName)),
    dropTable: (table) => timed('dropTable', () => partitions.dropTable(table)),
  };
}
