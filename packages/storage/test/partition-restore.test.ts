import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartitionDescriptor, RangeReadRequest } from '@shoal/model';
import { checkPartitionSnapshot, openLocalStore, PartitionSnapshotFormatError, type LocalStore, type StagedPartitionSnapshot } from '../src/index.ts';
import { openDatabase } from '../src/database.ts';
import { partitionBound } from '../src/layout.ts';
import { itemsOf, LEFT, populate, RIGHT, scopeOf, stageSnapshot, TABLE, watchedStore } from './fixtures/restore-stores.ts';

const CHILD = fileURLToPath(new URL('./fixtures/restore-until-killed.ts', import.meta.url));
const BATCH_BYTES = 4 * 1024;
const SNAPSHOT_INDEX = 7;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

const scan = (extra: Partial<RangeReadRequest> = {}): RangeReadRequest => ({ table: TABLE, forward: true, maxBytes: 1 << 30, select: 'ALL_ATTRIBUTES', ...extra });

/** What a partition holds, as reads within its bound see it: items, LSI and GSI entries, the group's applied index. */
async function partitionContents(local: LocalStore, partition: PartitionDescriptor): Promise<unknown> {
  const bound = partitionBound(partition);
  const store = local.partitions;
  const items = (await store.readRange(scan(), undefined, bound)).items;
  const lsi = (await store.readRange(scan({ indexName: 'byRank' }), undefined, bound)).items;
  const gsi = [];
  for (const city of ['c0', 'c1', 'c2', 'c3']) gsi.push((await store.readRange(scan({ indexName: 'byCity', hashValue: { S: city } }), undefined, bound)).items);
  return { items, lsi, gsi, applied: await store.appliedIndex(partition.id) };
}

/** Every key and value (hex) of the store at `dataDir`, once opened (which completes an interrupted restore) and closed. */
async function dump(dataDir: string): Promise<string[]> {
  await (await openLocalStore({ dataDir })).close();
  const database = await openDatabase({ dataDir });
  try {
    return (await database.level.iterator().all()).map(([key, value]) => `${hex(key)}=${hex(value)}`);
  } finally {
    await database.close();
  }
}

/** Kills the restorer once it wrote its k-th batch; resolves once it is dead. */
function restoreUntilKilled(dataDir: string, args: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dataDir, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('batch ')) child.kill('SIGKILL');
    });
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && output.includes('batch ')) resolve();
      else reject(new Error(`the restorer was not killed after its batch: ${output}`));
    });
  });
}

describe('a partition restored from a snapshot staged in a file', () => {
  let root = '';
  let staged: StagedPartitionSnapshot;
  /** A store holding an older state of both partitions (copied for each test). */
  let template = '';
  /** The template after a whole restore: every key and value. */
  let restored: string[] = [];
  /** Batches of that restore, and the most bytes one held. */
  let batches = 0;
  let largestBatch = 0;
  let leftAtSource: unknown;

  const copyOfTemplate = async (name: string): Promise<string> => {
    const dataDir = join(root, name);
    await cp(template, dataDir, { recursive: true });
    return dataDir;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-partition-restore-'));
    const source = await openLocalStore({ dataDir: join(root, 'source') });
    await populate(source.partitions, itemsOf('src', 240), 'src');
    staged = await stageSnapshot(source.partitions, scopeOf(LEFT), join(root, 'staged'));
    leftAtSource = await partitionContents(source, LEFT);
    await source.close();

    template = join(root, 'template');
    const target = await openLocalStore({ dataDir: template });
    await populate(target.partitions, itemsOf('old', 160, 80), 'old');
    await target.close();

    const dataDir = await copyOfTemplate('reference');
    const watched = await watchedStore(dataDir, (_n, bytes) => void (largestBatch = Math.max(largestBatch, bytes)));
    const snapshot = await checkPartitionSnapshot(staged);
    watched.count();
    largestBatch = 0;
    await watched.store.restorePartitionSnapshot([scopeOf(LEFT)], snapshot, SNAPSHOT_INDEX, { batchBytes: BATCH_BYTES });
    batches = watched.store.batchesWritten();
    await watched.close();
    restored = await dump(dataDir);
  }, 60_000);

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('holds exactly the snapshot\'s partition, leaves the other one as it was, keeps the counters exact, in bounded batches', async () => {
    // Old entries deleted, new ones put, marker and mark: many batches, none much above the bound (one pair may pass it).
    expect(batches).toBeGreaterThan(10);
    expect(largestBatch).toBeLessThan(BATCH_BYTES + 1_000);
    const before = await openLocalStore({ dataDir: await copyOfTemplate('right-before') });
    const rightBefore = await partitionContents(before, RIGHT);
    await before.close();

    const after = await openLocalStore({ dataDir: join(root, 'reference') });
    try {
      expect(await partitionContents(after, LEFT)).toEqual(leftAtSource);
      expect(((await partitionContents(after, LEFT)) as { applied: number }).applied).toBeGreaterThan(SNAPSHOT_INDEX);
      expect(await partitionContents(after, RIGHT)).toEqual(rightBefore);
      for (const indexName of [undefined, 'byRank', 'byCity']) {
        const counted = await after.partitions.statistics(TABLE, indexName);
        const [left, right] = await Promise.all([LEFT, RIGHT].map((p) => after.partitions.statistics(TABLE, indexName, partitionBound(p))));
        expect(counted).toEqual({ itemCount: left.itemCount + right.itemCount, sizeBytes: left.sizeBytes + right.sizeBytes });
      }
      // Intents and records: the source's left ones came, the old left ones went, the old right ones stayed.
      expect((await after.partitions.transactionsWithIntents()).map((t) => t.transaction.id).sort()).toEqual([`old-${RIGHT.id}`, `src-${LEFT.id}`]);
      expect((await after.partitions.transactionRecord(`src-${LEFT.id}`))?.state).toBe('PENDING');
      expect(await after.partitions.transactionRecord(`old-${LEFT.id}`)).toBeUndefined();
      expect(await after.partitions.transactionRecord(`old-${RIGHT.id}`)).toBeDefined();
    } finally {
      await after.close();
    }
  });

  it('replaces the wider range a replica held before (it missed a split): the other partition\'s entries there go too, counters exact', async () => {
    const local = await openLocalStore({ dataDir: await copyOfTemplate('wider') });
    try {
      const left = scopeOf(LEFT);
      const wider = { ...left, bound: { start: left.bound.start, end: scopeOf(RIGHT).bound.end } };
      await local.partitions.restorePartitionSnapshot([wider, left], await checkPartitionSnapshot(staged), SNAPSHOT_INDEX, { batchBytes: BATCH_BYTES });
      expect(await partitionContents(local, LEFT)).toEqual(leftAtSource);
      expect(await partitionContents(local, RIGHT)).toEqual({ items: [], lsi: [], gsi: [[], [], [], []], applied: await local.partitions.appliedIndex(RIGHT.id) });
      for (const indexName of [undefined, 'byRank', 'byCity']) {
        const counted = await local.partitions.statistics(TABLE, indexName);
        expect(counted).toEqual(await local.partitions.statistics(TABLE, indexName, partitionBound(LEFT)));
      }
      expect((await local.partitions.transactionsWithIntents()).map((t) => t.transaction.id)).toEqual([`src-${LEFT.id}`]);
    } finally {
      await local.close();
    }
  });

  it('applies the snapshot index when it is past the data\'s applied index', async () => {
    const dataDir = await copyOfTemplate('late-index');
    const local = await openLocalStore({ dataDir });
    try {
      const applied = await local.partitions.restorePartitionSnapshot([scopeOf(LEFT)], await checkPartitionSnapshot(staged), 1_000_000);
      expect(applied).toBe(1_000_000);
      expect(await local.partitions.appliedIndex(LEFT.id)).toBe(1_000_000);
    } finally {
      await local.close();
    }
  });

  it('a restore that failed after any of its batches is completed when the store opens again: exactly the whole restore\'s state', { timeout: 120_000 }, async () => {
    const snapshot = await checkPartitionSnapshot(staged);
    for (let k = 1; k < batches; k++) {
      const dataDir = await copyOfTemplate(`failed-${k}`);
      const watched = await watchedStore(dataDir, (n) => {
        if (n === k + 1) throw new Error(`injected failure of batch ${n}`);
      });
      watched.count();
      await expect(watched.store.restorePartitionSnapshot([scopeOf(LEFT)], snapshot, SNAPSHOT_INDEX, { batchBytes: BATCH_BYTES })).rejects.toThrow(/injected failure/);
      await watched.close();
      expect(await dump(dataDir), `failed after batch ${k}`).toEqual(restored);
    }
  });

  it('a restore whose process was killed (SIGKILL) after its k-th batch is completed when the store opens again', { timeout: 120_000 }, async () => {
    for (const k of [1, 2, Math.floor(batches / 2), batches - 1]) {
      const dataDir = await copyOfTemplate(`killed-${k}`);
      const scope = scopeOf(LEFT);
      await restoreUntilKilled(dataDir, { staged, scope: { ...scope, bound: { start: hex(scope.bound.start), end: hex(scope.bound.end) } }, snapshotIndex: SNAPSHOT_INDEX, batchBytes: BATCH_BYTES, k });
      expect(await dump(dataDir), `killed after batch ${k}`).toEqual(restored);
    }
  });

  it('refuses a staged snapshot cut short or malformed before it writes anything, and a snapshot of another group', async () => {
    const bytes = await readFile(staged.path);
    const cut = join(root, 'cut');
    await writeFile(cut, bytes);
    await truncate(cut, bytes.length - 3);
    await expect(checkPartitionSnapshot({ path: cut, offset: 0, size: bytes.length })).rejects.toThrow(/ends .* before/);
    await expect(checkPartitionSnapshot({ path: cut, offset: 0, size: bytes.length - 3 })).rejects.toThrow(PartitionSnapshotFormatError);
    const garbled = join(root, 'garbled');
    await writeFile(garbled, Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{}')]));
    await expect(checkPartitionSnapshot({ path: garbled, offset: 0, size: 6 })).rejects.toThrow(/unknown header/);

    const dataDir = await copyOfTemplate('other-group');
    const local = await openLocalStore({ dataDir });
    try {
      await expect(local.partitions.restorePartitionSnapshot([scopeOf(RIGHT)], await checkPartitionSnapshot(staged), SNAPSHOT_INDEX)).rejects.toThrow(/cannot replace group/);
    } finally {
      await local.close();
    }
    expect(await dump(dataDir)).toEqual(await dump(template));
  });

  it('a store whose interrupted restore lost its staged file does not open, and says why', async () => {
    const dataDir = await copyOfTemplate('lost-file');
    const copy = join(root, 'staged-lost');
    await cp(staged.path, copy);
    const watched = await watchedStore(dataDir, (n) => {
      if (n === 3) throw new Error('injected failure');
    });
    watched.count();
    await expect(watched.store.restorePartitionSnapshot([scopeOf(LEFT)], await checkPartitionSnapshot({ ...staged, path: copy }), SNAPSHOT_INDEX, { batchBytes: BATCH_BYTES })).rejects.toThrow();
    await watched.close();
    await rm(copy);
    await expect(openLocalStore({ dataDir })).rejects.toThrow(/staged-lost/);
  });
});
