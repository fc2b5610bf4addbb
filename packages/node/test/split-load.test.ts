/**
 * The node side of splitting by itself, on driven clocks: a replica's measures start over when its
 * range changes (a split) but its admission buckets do not; a table with a local secondary index is
 * sampled by item collection; the meta leader's hot item list and leadership moves.
 */
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { encodeCollectionPrefix, encodeItemKey, type PartitionWriteResult, type TableSchema } from '@shoal/model';
import { HotKeys, LeadershipTransfers, NodeLoad, NodeReports, recordGet, recordWrite } from '@shoal/node';
import { PartitionLoadSchema } from '@shoal/proto';

const table: TableSchema = { name: 'heat', tableId: 7, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [] };
const withLsi: TableSchema = { ...table, indexes: [{ name: 'byOther', kind: 'LSI', indexId: 8, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'other', type: 'N' }, projection: { type: 'KEYS_ONLY' } }] } as TableSchema;
const ok: PartitionWriteResult = { applied: true, outcomes: [{ status: 'ok' }] };
const put = (schema: TableSchema, pk: string, sk: number) => ({ operations: [{ table: schema, kind: 'Put' as const, key: { pk: { S: pk }, sk: { N: String(sk) } }, item: { pk: { S: pk }, sk: { N: String(sk) } } }] });
const range = (start: number, end: number) => ({ startKey: Uint8Array.of(0, 0, 0, 7, start), endKey: Uint8Array.of(0, 0, 0, 7, end) });

describe('a replica\'s load after a split', () => {
  it('starts its rates and sample over when its range changes, keeping its admission buckets', () => {
    let now = 0;
    const load = new NodeLoad({ now: () => now, limits: { writeUnitsPerSecond: 5, burstSeconds: 1 } });
    const tracker = load.of(1);
    for (let i = 0; i < 5; i++) {
      tracker.admit('write', table.name);
      recordWrite(tracker, put(table, 'a', i), ok);
    }
    now = 500;
    expect(load.report(1, range(0x00, 0xff))).toMatchObject({ writesPerSecond: 5 });
    // The same range again: nothing starts over.
    expect(load.report(1, range(0x00, 0xff))!.sampledKeys).toHaveLength(5);
    // Split: the left half measures anew, but its bucket is not refilled.
    const left = load.report(1, range(0x00, 0x80))!;
    expect(left.writesPerSecond).toBe(0);
    expect(left.sampledKeys).toEqual([]);
    // Half a second refilled 2.5 units, enough for 3 requests (admitted while any is left); a reset bucket would admit 5.
    for (let i = 0; i < 3; i++) tracker.admit('write', table.name);
    expect(() => tracker.admit('write', table.name)).toThrow(/Throughput exceeds/);
    expect(load.report(2)).toBeUndefined();
  });

  it('samples a table with a local secondary index by item collection, other tables by item', () => {
    const load = new NodeLoad({ now: () => 0 });
    recordWrite(load.of(1), put(withLsi, 'a', 1), ok);
    recordGet(load.of(1), withLsi, { pk: { S: 'a' }, sk: { N: '2' } }, false, 10);
    recordWrite(load.of(2), put(table, 'a', 1), ok);
    const prefix = Buffer.from(encodeCollectionPrefix(withLsi.tableId, { S: 'a' })).toString('hex');
    expect(load.report(1)!.sampledKeys.map((k) => Buffer.from(k.key).toString('hex'))).toEqual([prefix, prefix]);
    expect(load.report(2)!.sampledKeys.map((k) => Buffer.from(k.key).toString('hex'))).toEqual([Buffer.from(encodeItemKey(table.tableId, { S: 'a' }, { N: '1' })).toString('hex')]);
  });
});

describe('the meta leader\'s hot items', () => {
  const report = (partitionId: number, key: number, since: number) => ({ partitionId, tableId: 7, key: Uint8Array.of(key), share: 0.9, utilization: 1, since });

  it('keeps when a key was first found, lists it a while after the last round that found it, drops it when its partition split', () => {
    const hot = new HotKeys();
    const never = () => false;
    expect(hot.update([report(1, 1, 0)], 0, never)).toHaveLength(1);
    expect(hot.update([report(1, 1, 5_000)], 5_000, never)).toEqual([]);
    expect(hot.list()).toEqual([report(1, 1, 0)]);
    // Another key of the same partition is news.
    expect(hot.update([report(1, 2, 6_000)], 6_000, never)).toEqual([report(1, 2, 6_000)]);
    expect(hot.update([], 36_000, never)).toEqual([]);
    expect(hot.list()).toHaveLength(1);
    expect(hot.update([], 36_001, never)).toEqual([]);
    expect(hot.list()).toEqual([]);
    hot.update([report(3, 1, 0)], 0, never);
    hot.update([], 1_000, (id) => id === 3);
    expect(hot.list()).toEqual([]);
  });
});

describe('leadership moves', () => {
  const leads = (reports: NodeReports, nodeId: number, partitionId: number, term: number, at = 0) =>
    reports.record(nodeId, at, [create(PartitionLoadSchema, { partitionId: BigInt(partitionId), leader: true, term: BigInt(term) })]);

  it('are told to the node leading the partition until the target leads it, or they expire', () => {
    const reports = new NodeReports();
    const transfers = new LeadershipTransfers();
    leads(reports, 1, 5, 2);
    transfers.request(5, 3, 0, 10_000);
    expect(transfers.dueFor(2, reports, 1)).toEqual([]);
    expect(transfers.dueFor(1, reports, 1)).toEqual([{ partitionId: 5, toNode: 3 }]);
    leads(reports, 3, 5, 3);
    expect(transfers.dueFor(1, reports, 2)).toEqual([]);
    expect(transfers.dueFor(3, reports, 2)).toEqual([]);
    // Expired: given up.
    leads(reports, 1, 6, 2);
    transfers.request(6, 2, 0, 10_000);
    expect(transfers.dueFor(1, reports, 10_000)).toEqual([]);
  });
});
