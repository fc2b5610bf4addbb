import type { TableSchema } from '@shoal/model';
import { openLocalStore } from '@shoal/storage';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { timedPartitionClient } from '../src/ops/partition-metrics.ts';

const table: TableSchema = { name: 'timed', tableId: 9, hashKey: { name: 'id', type: 'S' }, indexes: [] };

describe('timedPartitionClient', () => {
  it('times every call by operation and counts the failed ones, answers unchanged', async () => {
    const store = await openLocalStore({ inMemory: true });
    try {
      const registry = new Registry();
      const partitions = timedPartitionClient(store.partitions, registry);
      expect(await partitions.get({ table, key: { id: { S: 'a' } } }, { consistent: true })).toBeUndefined();
      expect(await partitions.statistics(table)).toEqual(await store.partitions.statistics(table));
      await expect(partitions.get({ table, key: { other: { S: 'a' } } }, { consistent: true })).rejects.toThrow();

      const text = await registry.metrics();
      expect(text).toContain('shoal_router_partition_request_duration_seconds_count{operation="get"} 2');
      expect(text).toContain('shoal_router_partition_request_duration_seconds_count{operation="statistics"} 1');
      expect(text).toContain('shoal_router_partition_request_errors_total{operation="get"} 1');
      expect(text).not.toContain('shoal_router_partition_request_errors_total{operation="statistics"}');
    } finally {
      await store.close();
    }
  });
});
