/**
 * A crash in the middle of installing a partition snapshot leaves the replica's old state or the new
 * one, never a mix, once the store opens again (it completes a restore its marker names from the staged
 * file): a child process installs a large snapshot into a store holding an older state of the
 * partition and is killed with SIGKILL at various moments of the restore.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type IndexSchema, type Item, type TableSchema } from '@shoal/model';
import { openLocalStore, partitionBound, type LocalStore } from '@shoal/storage';
import { PartitionReplica, encodePartitionCommand } from '@shoal/node';
import { readSnapshotData } from './fixtures/snapshot-data.ts';

const CHILD = fileURLToPath(new URL('./fixtures/partition-snapshot-restorer.ts', import.meta.url));
const GSI: IndexSchema = { name: 'byTag', kind: 'GSI', indexId: 52, hashKey: { name: 'tag', type: 'S' }, projection: { type: 'ALL' } };
const TABLE: TableSchema = { name: 'crash', tableId: 51, hashKey: { name: 'pk', type: 'S' }, indexes: [GSI] };
const [PARTITION] = initialPartitions(TABLE.tableId, 1, 3);
const BOUND = partitionBound(PARTITION);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Writes `count` items named `<prefix>-<i>` through a replica of the partition, at indexes 1..count. */
async function fill(local: LocalStore, prefix: string, count: number): Promise<PartitionReplica> {
  const replica = await PartitionReplica.open(PARTITION.id, local.partitions, { boundOf: () => BOUND, tableOf: () => TABLE });
  for (let i = 0; i < count; i += 100) {
    const operations = Array.from({ length: Math.min(100, count - i) }, (_, k) => {
      const item: Item = { pk: { S: `${prefix}-${i + k}` }, tag: { S: prefix }, pad: { S: 'x'.repeat(200) } };
      return { table: TABLE, kind: 'Put' as const, key: { pk: item.pk }, item };
    });
    await replica.apply(encodePartitionCommand({ kind: 'write', write: { operations } }), i / 100 + 1);
  }
  // Applied writes are staged; the host waits for them as this does.
  await replica.settled();
  return replica;
}

/**
 * Starts the restorer and kills it `delayMs` after it starts restoring (undefined: once it restored);
 * resolves with whether it finished first.
 */
function restoreThenKill(dataDir: string, payloadPath: string, args: object, delayMs: number | undefined): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dataDir, payloadPath, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const due = delayMs === undefined ? output.includes('restored') : output.includes('restoring');
      if (due && !output.includes('killing')) {
        output += 'killing';
        setTimeout(() => child.kill('SIGKILL'), delayMs ?? 0);
      }
    });
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && output.includes('killing')) resolve(output.includes('restored'));
      else reject(new Error(`restorer ended without being killed mid-restore: ${output}`));
    });
  });
}

describe('a crash while a partition snapshot is installed', () => {
  let root = '';
  let payloadPath = '';
  const NEW_ITEMS = 3_000;
  const OLD_ITEMS = 1_000;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-snapshot-crash-'));
    const source = await openLocalStore({ dataDir: join(root, 'source') });
    const replica = await fill(source, 'new', NEW_ITEMS);
    payloadPath = join(root, 'payload');
    await writeFile(payloadPath, await readSnapshotData(await replica.openSnapshotPayload()()));
    await source.close();
  }, 60_000);

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('leaves the old state or the new one, whole, at any moment of the kill', { timeout: 120_000 }, async () => {
    const outcomes = new Set<string>();
    for (const [attempt, delayMs] of [0, 3, 20, 200, undefined].entries()) {
      const dataDir = join(root, `target-${attempt}`);
      const target = await openLocalStore({ dataDir });
      await fill(target, 'old', OLD_ITEMS);
      await target.close();
      const finished = await restoreThenKill(dataDir, payloadPath, { groupId: PARTITION.id, index: 100, table: TABLE, bound: { start: hex(BOUND.start), end: hex(BOUND.end) } }, delayMs);

      const after = await openLocalStore({ dataDir });
      try {
        const applied = await after.partitions.appliedIndex(PARTITION.id);
        const items = (await after.partitions.readRange({ table: TABLE, forward: true, maxBytes: 1 << 30, select: 'ALL_ATTRIBUTES' }, undefined, BOUND)).items;
        const indexed = (await after.partitions.readRange({ table: TABLE, indexName: GSI.name, hashValue: { S: applied === 100 ? 'new' : 'old' }, forward: true, maxBytes: 1 << 30, select: 'COUNT' }, undefined, BOUND)).count;
        const prefixes = new Set(items.map((item) => (item.pk as { S: string }).S.split('-')[0]));
        const state = applied === 100 ? 'new' : 'old';
        outcomes.add(state);
        // Whole: the mark and every item and index entry of one state, and exact counters.
        expect(applied).toBe(state === 'new' ? 100 : OLD_ITEMS / 100);
        expect([...prefixes]).toEqual([state]);
        expect(items).toHaveLength(state === 'new' ? NEW_ITEMS : OLD_ITEMS);
        expect(indexed).toBe(items.length);
        expect(await after.partitions.statistics(TABLE)).toEqual(await after.partitions.statistics(TABLE, undefined, BOUND));
        if (finished) expect(state).toBe('new');
      } finally {
        await after.close();
      }
    }
    // The kills landed during or after the restore.
    expect(outcomes.has('new')).toBe(true);
  });
});
