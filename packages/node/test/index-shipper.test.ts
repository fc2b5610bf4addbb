/**
 * The index shipper over a real store with index outboxes, without peers: records of a GSI the map
 * view does not show are held, and the creation map version their backfill record may hold is looked
 * up in the store once, not for every batch, until a write that can bring one (a backfill command
 * here) is applied; a version recorded later is then learned, and the records of the GSI deleted by
 * it are dropped.
 */
import { describe, expect, it, vi } from 'vitest';
import type { PartitionWrite, TableSchema } from '@shoal/model';
import { openLocalStore } from '@shoal/storage';
import { ClusterView } from '@shoal/node';
import { IndexShipper } from '../src/index-shipper/index-shipper.ts';

const S = (value: string) => ({ S: value });
const BY_CITY = { name: 'byCity', kind: 'GSI' as const, indexId: 41, hashKey: { name: 'city', type: 'S' as const }, projection: { type: 'KEYS_ONLY' as const } };
const TABLE: TableSchema = { name: 'people', tableId: 40, hashKey: { name: 'pk', type: 'S' }, indexes: [BY_CITY] };
const BASE = 3;
const NODE = 1;
const put = (pk: string): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), city: S(`c${pk}`) } }] });

describe('IndexShipper: creation versions of GSIs the view does not show', () => {
  it('looks a GSI\'s creation version up once over many held batches, again only after a backfill command applied, and learns the version it recorded', async () => {
    const { partitions: store, close } = await openLocalStore({ inMemory: true, indexOutbox: true });
    // The map at version 5 shows neither the table nor its GSI (created at 4, deleted since).
    const view = new ClusterView();
    view.apply({ notModified: false, version: 5, partitions: [], nodes: [], tables: [] });
    let now = 0;
    const shipper = new IndexShipper({
      store,
      host: { nodeId: NODE, leaderOf: () => NODE, propose: async () => ({ trimmed: 0 }) },
      view,
      ledGroups: () => [BASE],
      splitCount: () => 0,
      ancestorsOf: () => [],
      nodeAddress: () => undefined,
      maxBatchRecords: 1,
      now: () => now,
    });
    const lookups = vi.spyOn(store, 'indexCreatedAtMapVersion');
    try {
      const records = 3;
      for (let i = 0; i < records; i++) await store.write(put(`k${i}`), { groupId: BASE, index: i + 1 });
      const passes = async (count: number): Promise<void> => {
        for (let pass = 0; pass < count; pass++) {
          // Past the backoff of the batch held before.
          now += 10_000;
          await shipper.pass();
          await shipper.idle();
        }
      };
      await passes(20);
      // Every batch held at the same record (no version known: no presumption over a map that did not move), looked up once.
      expect([shipper.stats.batchesHeld, shipper.stats.recordsDropped, lookups.mock.calls.length]).toEqual([20, 0, 1]);

      // The backfill command of the GSI, with its creation version, applied here (a router's, late).
      await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name, indexCreatedAtMapVersion: 4 }, undefined, { groupId: BASE, index: records + 1 });
      await passes(1);
      // Looked up again and learned: the view is past the creation and does not show the GSI, deleted (every record dropped).
      expect([shipper.stats.recordsDropped, shipper.stats.recordsShipped, shipper.stats.batchesHeld, lookups.mock.calls.length]).toEqual([records, records, 20, 2]);
    } finally {
      await shipper.close();
      await close();
    }
  });
});
