import type { TableSchema } from '@shoal/model';
import { openLocalStore } from '@shoal/storage';
import { describe, expect, it } from 'vitest';
import { createProcessMetrics } from '../src/ops/metrics.ts';
import { timedPartitionClient } from '../src/ops/partition-metrics.ts';

const table: TableSchema = { name: 'timed', tableId: 9, hashKey: { name: 'id', type: 'S' }, indexes: [] };

describe('timedPartitionClient', () => {
  it('times every call by operation and counts the failed ones, answers unchanged', async () => {
    const store = await openLocalStore({ inMemory: true });
    try {
      const timed = timedPartitionClient(store.partitions);
      const process = createProcessMetrics([{ prefix: 'shoal_router', read: () => ({}), series: () => timed.series() }]);
      const partitions = timed.partitions;
      expect(await partitions.get({ table, key: { id: { S: 'a' } } }, { consistent: true })).toBeUndefined();
      expect(await partitions.statistics(table)).toEqual(await store.partitions.statistics(table));
      await expect(partitions.get({ table, key: { other: { S: 'a' } } }, { consistent: true })).rejects.toThrow();

      const text = await process.scrape();
      expect(text).toContain('# HELP shoal_router_partition_request_duration_seconds Duration of the partition requests of DynamoDB requests, from the router, retries included\n# TYPE shoal_router_partition_request_duration_seconds histogram\n');
      expect(text).toContain('# HELP shoal_router_partition_request_errors_total Partition requests that failed (including DynamoDB errors such as a failed condition)\n# TYPE shoal_router_partition_request_errors_total counter\n');
      expect(text).toContain('shoal_router_partition_request_duration_seconds_count{operation="get"} 2');
      expect(text).toContain('shoal_router_partition_request_duration_seconds_bucket{operation="get",le="+Inf"} 2');
      expect(text).toContain('shoal_router_partition_request_duration_seconds_count{operation="statistics"} 1');
      expect(text).toMatch(/shoal_router_partition_request_duration_seconds_bucket\{operation="get",le="0\.001"\} [0-2]\n/);
      // Operations never called are not exported.
      expect(text).not.toContain('operation="write"');
      expect(text).toContain('shoal_router_partition_request_errors_total{operation="get"} 1');
      expect(text).not.toContain('shoal_router_partition_request_errors_total{operation="statistics"}');
    } finally {
      await store.close();
    }
  });
});
