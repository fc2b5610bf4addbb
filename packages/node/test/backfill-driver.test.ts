/**
 * BackfillDriver's counts over a real store and replica, its host a stand-in log: a chunk counts
 * when it applies on the proposer's replica, whatever its proposal answered. A proposal that timed out
 * whose entry applied later (after the driver proposed the same chunk again, stale then) counts once;
 * a chunk another node proposed counts there, not here.
 */
import { describe, expect, it } from 'vitest';
import type { TableSchema } from '@shoal/model';
import { openLocalStore } from '@shoal/storage';
import { BackfillDriver, PartitionReplica, RaftTimeoutError, encodePartitionCommand, type AppliedBackfillChunk } from '@shoal/node';

const S = (value: string) => ({ S: value });
const BY_CITY = { name: 'byCity', kind: 'GSI' as const, indexId: 41, hashKey: { name: 'city', type: 'S' as const }, projection: { type: 'KEYS_ONLY' as const } };
const TABLE: TableSchema = { name: 'people', tableId: 40, hashKey: { name: 'pk', type: 'S' }, indexes: [BY_CITY] };
const BASE = 3;
const NODE = 1;
const OTHER_NODE = 2;
const ITEMS = 10;
const CHUNK_ITEMS = 4;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('BackfillDriver', () => {
  it('counts the chunks this node proposed as they apply here: a timed-out proposal that committed once, a stale one and another node\'s not', async () => {
    const { partitions: store, close } = await openLocalStore({ inMemory: true, indexOutbox: true });
    let driver: BackfillDriver | undefined;
    const replica = await PartitionReplica.open(BASE, store, {
      backfillChunk: { maxItems: CHUNK_ITEMS, maxBytes: 1 << 20 },
      onBackfillChunk: (chunk: AppliedBackfillChunk) => driver?.chunkApplied(chunk),
    });
    let index = 0;
    const apply = async (data: Uint8Array): Promise<unknown> => {
      const result = await replica.apply(data, ++index);
      await replica.settled();
      return result;
    };
    try {
      for (let i = 0; i < ITEMS; i++) await apply(encodePartitionCommand({ kind: 'write', write: { operations: [{ table: TABLE, kind: 'Put', key: { pk: S(`k${i}`) }, item: { pk: S(`k${i}`), city: S('Oslo') } }] } }));
      await apply(encodePartitionCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }));
      // The log: this node's first proposal times out before its entry applies; the driver proposes the
      // same chunk again, and the first entry applies just before the second (stale then).
      let late: Uint8Array | undefined;
      const proposals: Uint8Array[] = [];
      const host = {
        nodeId: NODE,
        hasGroup: () => true,
        leaderOf: () => NODE,
        propose: async (groupId: number, data: Uint8Array): Promise<unknown> => {
          proposals.push(data);
          if (proposals.length === 1) {
            late = data;
            throw new RaftTimeoutError(groupId, 'proposal', 5_000);
          }
          if (late !== undefined) await apply(late);
          late = undefined;
          return apply(data);
        },
      };
      // The map shows the GSI: no walk ends for a deleted one.
      const view = { version: 1, gsiOf: () => ({ table: TABLE, index: BY_CITY }), partitions: () => [].values() };
      driver = new BackfillDriver({ store, host, isPartition: () => true, view, intervalMs: 60_000 });
      // A former leader's chunk, applied here too.
      const [started] = await store.runningIndexBackfills(BASE);
      await apply(encodePartitionCommand({ kind: 'backfillChunk', indexId: BY_CITY.indexId, fromKey: hex(started.nextKey), proposer: OTHER_NODE }));

      expect(driver.stats).toMatchObject({ chunksApplied: 0, itemsWalked: 0 });

      // Each pass drives the walk on its own until it ends or a proposal fails (the next pass goes on).
      for (let wait = 0; wait < 400 && (await store.runningIndexBackfills(BASE)).length > 0; wait++) {
        await driver.pass();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await driver.close();
      expect(await store.runningIndexBackfills(BASE)).toEqual([]);
      // From the other node's next key: the timed-out chunk (applied late), the same chunk again (stale), the last one.
      expect(proposals.length).toBe(3);
      // The items left after the other node's chunk, each counted once.
      expect(driver.stats).toMatchObject({ chunksApplied: 2, itemsWalked: ITEMS - CHUNK_ITEMS });
    } finally {
      await driver?.close();
      await close();
    }
  });
});
