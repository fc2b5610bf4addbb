/**
 * The index shipper over a real store with index outboxes, without peers: records of a GSI the map
 * view does not show are held, and the creation map version their backfill record may hold is looked
 * up in the store once, not for every batch, until a write that can bring one (a backfill command,
 * a split, a restored snapshot) is applied; a version recorded later is then learned, and the records
 * of the GSI deleted by it are dropped, not before the view reaches it (no presumption once known).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { spaceRange, type PartitionWrite, type TableSchema } from '@shoal/model';
import { checkPartitionSnapshot, openLocalStore, type PartitionStore } from '@shoal/storage';
import { ClusterView } from '@shoal/node';
import { IndexShipper, type IndexShipperOptions } from '../src/index-shipper/index-shipper.ts';

const S = (value: string) => ({ S: value });
const BY_CITY = { name: 'byCity', kind: 'GSI' as const, indexId: 41, hashKey: { name: 'city', type: 'S' as const }, projection: { type: 'KEYS_ONLY' as const } };
const TABLE: TableSchema = { name: 'people', tableId: 40, hashKey: { name: 'pk', type: 'S' }, indexes: [BY_CITY] };
const BASE = 3;
const NODE = 1;
const put = (pk: string): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), city: S(`c${pk}`) } }] });

/** A view at `version` showing neither the table nor its GSI. */
function mapAt(view: ClusterView, version: number): void {
  view.apply({ notModified: false, version, partitions: [], nodes: [], tables: [] });
}

/** A shipper of group BASE, led here, with no peers (what it ships, it ships nowhere). */
function shipperOf(store: PartitionStore, view: ClusterView, now: () => number, options: Partial<IndexShipperOptions> = {}): IndexShipper {
  return new IndexShipper({
    store,
    host: { nodeId: NODE, leaderOf: () => NODE, propose: async () => ({ trimmed: 0 }) },
    view,
    ledGroups: () => [BASE],
    splitCount: () => 0,
    ancestorsOf: () => [],
    nodeAddress: () => undefined,
    now,
    ...options,
  });
}

describe('IndexShipper: creation versions of GSIs the view does not show', () => {
  it('looks a GSI\'s creation version up once over many held batches, again only after a backfill command applied, and learns the version it recorded', async () => {
    const { partitions: store, close } = await openLocalStore({ inMemory: true, indexOutbox: true });
    // The map at version 5 shows neither the table nor its GSI (created at 4, deleted since).
    const view = new ClusterView();
    mapAt(view, 5);
    let now = 0;
    const shipper = shipperOf(store, view, () => now, { maxBatchRecords: 1 });
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

  it('looks again after a split of another group here, and learns a version a restored snapshot of the group brought', async () => {
    const { partitions: store, close } = await openLocalStore({ inMemory: true, indexOutbox: true });
    // The same group on the node that sends the snapshot, where the GSI's backfill command (created at 4) was applied.
    const sender = await openLocalStore({ inMemory: true, indexOutbox: true });
    const directory = await mkdtemp(join(tmpdir(), 'shoal-index-shipper-'));
    const view = new ClusterView();
    mapAt(view, 5);
    let now = 0;
    const shipper = shipperOf(store, view, () => now);
    const lookups = vi.spyOn(store, 'indexCreatedAtMapVersion');
    const pass = async (): Promise<void> => {
      now += 10_000;
      await shipper.pass();
      await shipper.idle();
    };
    try {
      const records = 3;
      for (let i = 0; i < records; i++) {
        await store.write(put(`k${i}`), { groupId: BASE, index: i + 1 });
        await sender.partitions.write(put(`k${i}`), { groupId: BASE, index: i + 1 });
      }
      await sender.partitions.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name, indexCreatedAtMapVersion: 4 }, undefined, { groupId: BASE, index: records + 1 });
      await pass();
      await pass();
      expect([shipper.stats.batchesHeld, lookups.mock.calls.length]).toEqual([2, 1]);

      // A split of another group here moves backfillsStarted: the next batch asks again (still none).
      const started = store.backfillsStarted;
      await store.splitIndexOutbox(BASE + 1, BASE + 2, spaceRange(TABLE.tableId).start);
      expect(store.backfillsStarted).toBeGreaterThan(started);
      await pass();
      expect([shipper.stats.batchesHeld, shipper.stats.recordsDropped, lookups.mock.calls.length]).toEqual([3, 0, 2]);

      // A snapshot of the group restored here brings the backfill record: learned, and the view (5) is past 4.
      const scope = { groupId: BASE, table: TABLE, bound: spaceRange(TABLE.tableId) };
      const stream = await sender.partitions.openPartitionSnapshot(scope)();
      const parts: Uint8Array[] = [];
      for await (const chunk of stream.chunks) parts.push(chunk);
      stream.release();
      const path = join(directory, 'snapshot');
      const bytes = Buffer.concat(parts);
      await writeFile(path, bytes);
      await store.restorePartitionSnapshot([scope], await checkPartitionSnapshot({ path, offset: 0, size: bytes.length }), records + 1);
      await pass();
      expect([shipper.stats.batchesHeld, shipper.stats.recordsDropped, lookups.mock.calls.length]).toEqual([3, records, 3]);
    } finally {
      await shipper.close();
      await close();
      await sender.close();
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('with a short grace and a newer map, a version recorded after a cached "no version" keeps the records held until the view reaches it', async () => {
    const { partitions: store, close } = await openLocalStore({ inMemory: true, indexOutbox: true });
    const view = new ClusterView();
    mapAt(view, 5);
    let now = 0;
    const shipper = shipperOf(store, view, () => now, { unknownIndexGraceMs: 5_000 });
    const lookups = vi.spyOn(store, 'indexCreatedAtMapVersion');
    // Past the held batch's backoff (at most 2 s), within the grace unless told.
    const passAt = async (time: number): Promise<void> => {
      now = time;
      await shipper.pass();
      await shipper.idle();
    };
    try {
      const records = 3;
      for (let i = 0; i < records; i++) await store.write(put(`k${i}`), { groupId: BASE, index: i + 1 });
      await passAt(1_000);
      // A newer map, still without the GSI: no lookup (backfillsStarted did not move), within the grace.
      mapAt(view, 6);
      await passAt(3_000);
      expect([shipper.stats.batchesHeld, shipper.stats.recordsDropped, lookups.mock.calls.length]).toEqual([2, 0, 1]);

      // The backfill command arrives, created at 7; no newer map since. Past the grace, over a newer
      // map than the first unknown one: without the version the records would be presumed deleted.
      await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name, indexCreatedAtMapVersion: 7 }, undefined, { groupId: BASE, index: records + 1 });
      await passAt(20_000);
      await passAt(25_000);
      expect([shipper.stats.batchesHeld, shipper.stats.recordsDropped, lookups.mock.calls.length]).toEqual([4, 0, 2]);

      // The view reaches 7 without the GSI: deleted.
      mapAt(view, 7);
      await passAt(30_000);
      expect([shipper.stats.recordsDropped, shipper.stats.recordsShipped]).toEqual([records, records]);
    } finally {
      await shipper.close();
      await close();
    }
  });
});
