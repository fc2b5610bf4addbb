/**
 * The small pieces the node's GSI background work shares: PeriodicPass (one pass at a time, joined,
 * closed with the pass under way awaited) and DeletedIndexes (a GSI deleted from the map, told from
 * one the map does not show yet).
 */
import { describe, expect, it } from 'vitest';
import type { IndexSchema, PartitionDescriptor, TableSchema } from '@shoal/model';
import { DeletedIndexes } from '../src/partition/deleted-indexes.ts';
import { PeriodicPass } from '../src/partition/periodic-pass.ts';

describe('PeriodicPass', () => {
  it('runs one pass at a time (a call meanwhile joins it), and close waits for the pass under way', async () => {
    let passes = 0;
    let release: () => void = () => undefined;
    const pass = new PeriodicPass(
      async () => {
        passes += 1;
        await new Promise<void>((resolve) => (release = resolve));
        return passes;
      },
      { intervalMs: 60_000, onError: () => undefined },
    );
    const first = pass.run();
    const joined = pass.run();
    expect(joined).toBe(first);
    let closed = false;
    const closing = pass.close().then(() => (closed = true));
    await Promise.resolve();
    expect([pass.closed, closed]).toEqual([true, false]);
    release();
    expect(await first).toBe(1);
    await closing;
    expect(closed).toBe(true);
    // A pass after the first ended is a new one.
    const second = pass.run();
    release();
    expect(await second).toBe(2);
  });

  it('hands a failure of a pass the timer started to onError; a caller gets its own', async () => {
    const errors: unknown[] = [];
    const pass = new PeriodicPass(
      async () => {
        throw new Error('no store');
      },
      { intervalMs: 1, onError: (error) => errors.push(error) },
    );
    await expect(pass.run()).rejects.toThrow('no store');
    pass.start();
    for (let wait = 0; wait < 200 && errors.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 5));
    await pass.close();
    expect(errors.length).toBeGreaterThan(0);
    expect(String(errors[0])).toContain('no store');
  });
});

describe('DeletedIndexes', () => {
  const index = (indexId: number): IndexSchema => ({ name: `i${indexId}`, kind: 'GSI', indexId, hashKey: { name: 'g', type: 'S' }, projection: { type: 'KEYS_ONLY' } });
  const table: TableSchema = { name: 't', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [index(2), index(3)] };
  const partition = (tableId: number): PartitionDescriptor => ({ id: 100 + tableId, tableId, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: 1, replicas: [] });

  /** A map view at a version, showing the GSIs named. */
  class View {
    version = 1;
    shown = new Set<number>();
    gsiOf(spaceId: number) {
      return this.shown.has(spaceId) ? { table, index: index(spaceId) } : undefined;
    }
    partitions(): IterableIterator<PartitionDescriptor> {
      return [...this.shown].map(partition).values();
    }
  }

  it('a GSI the view showed and shows no more is deleted at once', () => {
    const view = new View();
    view.shown = new Set([2, 3]);
    const indexes = new DeletedIndexes({ view, now: () => 0 });
    expect(indexes.status(2)).toBe('shown');
    view.version = 2;
    view.shown = new Set([2]);
    // Index 3 was never asked about, but the map showed it with partitions.
    expect([indexes.status(2), indexes.status(3)]).toEqual(['shown', 'deleted']);
  });

  it('a GSI the view never showed is unknown until it stays so for the grace over a newer map, then presumed deleted', () => {
    const view = new View();
    let now = 0;
    const indexes = new DeletedIndexes({ view, graceMs: 1_000, now: () => now });
    expect(indexes.status(7)).toBe('unknown');
    now = 5_000;
    // The map did not move: a view frozen (meta unreachable) deletes nothing.
    expect(indexes.status(7)).toBe('unknown');
    view.version = 2;
    // Presumed only: the shipper drops its records, the backfill driver ends no walk on it.
    expect(indexes.status(7)).toBe('presumedDeleted');
    // One that shows up meanwhile is shown.
    view.shown.add(8);
    expect(indexes.status(8)).toBe('shown');
  });

  it('a GSI never shown whose creation map version is known is deleted once the view is at or past it, and never presumed before', () => {
    const view = new View();
    let now = 0;
    const indexes = new DeletedIndexes({ view, graceMs: 1_000, now: () => now });
    view.version = 4;
    expect(indexes.status(9, 6)).toBe('unknown');
    // Long unknown over newer maps, still below its creation: the map has yet to show it, no presumption.
    now = 60_000;
    view.version = 5;
    expect(indexes.status(9, 6)).toBe('unknown');
    // At its creation version (or past it), a view that does not show it proves it deleted.
    view.version = 6;
    expect(indexes.status(9, 6)).toBe('deleted');
    // Without the version, the same index at the same moment is only presumed deleted (the old rule).
    expect(new DeletedIndexes({ view, graceMs: 1_000, now: () => now }).status(9)).toBe('unknown');
    // A version below 1 names no map: not proof of deletion, the presumption's rule applies.
    expect(new DeletedIndexes({ view, graceMs: 1_000, now: () => now }).status(9, 0)).toBe('unknown');
    // Shown at its version, it is shown.
    view.shown.add(9);
    expect(indexes.status(9, 6)).toBe('shown');
  });
});
