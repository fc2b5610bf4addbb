/**
 * A partition replica's snapshot install when things go wrong: a restore that fails part way keeps
 * the replica refusing reads (its store is partly restored until the marker redoes it at the next
 * open), and a snapshot older than the state a replica showed lowers what it shows as visible (its
 * eventual reads wait for the log again instead of being served from the older state).
 */
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initialPartitions, type TableSchema } from '@shoal/model';
import { openLocalStore, partitionBound, type PartitionStore } from '@shoal/storage';
import { PartitionReplica, encodePartitionCommand, type SnapshotData, type StagedPayload } from '@shoal/node';

const TABLE: TableSchema = { name: 't', tableId: 40, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const [PARTITION] = initialPartitions(TABLE.tableId, 1, 1);
const roots: string[] = [];

afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'shoal-install-failures-'));
  roots.push(root);
  return root;
}

const openReplica = (store: PartitionStore, onRestore: () => Promise<void> = async () => undefined): Promise<PartitionReplica> =>
  PartitionReplica.open(PARTITION!.id, store, { boundOf: () => partitionBound(PARTITION!), tableOf: () => TABLE, onRestore });
const put = (i: number): Uint8Array =>
  encodePartitionCommand({ kind: 'write', write: { operations: [{ table: TABLE, kind: 'Put', key: { pk: { S: `k${i}` } }, item: { pk: { S: `k${i}` }, v: { N: String(i) } } }] } });
const has = async (store: PartitionStore, i: number): Promise<boolean> => (await store.get({ table: TABLE, key: { pk: { S: `k${i}` } } }, { consistent: false })) !== undefined;

/** A replica in its own store that applied puts 1..n, and its snapshot payload staged in a file. */
async function source(root: string, name: string, n: number) {
  const local = await openLocalStore({ dataDir: join(root, name) });
  const replica = await openReplica(local.partitions);
  for (let i = 1; i <= n; i++) await replica.apply(put(i), i);
  await replica.settled();
  const data: SnapshotData = await replica.openSnapshotPayload()();
  const parts: Uint8Array[] = [];
  for await (const chunk of data.chunks) parts.push(chunk);
  data.release();
  const bytes = Buffer.concat(parts);
  const path = join(root, `${name}.payload`);
  await writeFile(path, bytes);
  const payload: StagedPayload = { path, offset: 0, size: bytes.length };
  return { local, replica, payload };
}

describe('PartitionReplica.installSnapshot when things go wrong', () => {
  it('keeps refusing reads after a restore that failed part way (the store holds part of the snapshot)', async () => {
    const root = await scratch();
    const leader = await source(root, 'leader', 8);
    const followerDir = join(root, 'follower');
    const before = await openLocalStore({ dataDir: followerDir });
    const old = await openReplica(before.partitions);
    for (let i = 1; i <= 5; i++) await old.apply(put(i), i);
    await old.settled();
    await before.close();

    // The staged file is cut short once checked (a disk error reading it): the restore fails after
    // its marker, with the old range deleted and part of the snapshot written.
    const whole = await readFile(leader.payload.path);
    const local = await openLocalStore({ dataDir: followerDir });
    const follower = await openReplica(local.partitions, () => truncate(leader.payload.path, Math.floor(whole.length / 2)));
    await expect(follower.installSnapshot({ index: 8, data: await leader.replica.snapshot(), payload: leader.payload })).rejects.toThrow();
    expect(follower.restoring()).toBe(true);
    expect(await has(local.partitions, 8)).toBe(false);
    await local.close();
    await writeFile(leader.payload.path, whole);
    // The next open completes the restore from the staged file: the snapshot's state, whole.
    const reopened = await openLocalStore({ dataDir: followerDir });
    const restarted = await openReplica(reopened.partitions);
    expect(restarted.restoring()).toBe(false);
    expect(restarted.appliedIndex()).toBe(8);
    for (let i = 1; i <= 8; i++) expect(await has(reopened.partitions, i)).toBe(true);
    await reopened.close();
    await leader.local.close();
  });

  it('lowers the visible index to a snapshot older than what it showed, so reads asking for more wait', async () => {
    const root = await scratch();
    const ahead = await source(root, 'ahead', 8);
    const behind = await source(root, 'behind', 5);
    const target = await openLocalStore({ dataDir: join(root, 'follower') });
    // The store took a snapshot at 8, then (a crash before its Raft log recorded it) a leader that had
    // applied only 5 sends its own.
    const first = await openReplica(target.partitions);
    await first.installSnapshot({ index: 8, data: await ahead.replica.snapshot(), payload: ahead.payload });
    const follower = await openReplica(target.partitions);
    expect(follower.visibleIndex()).toBe(8);
    await follower.installSnapshot({ index: 4, data: await behind.replica.snapshot(), payload: behind.payload });
    expect(follower.appliedIndex()).toBe(5);
    expect(follower.visibleIndex()).toBe(5);
    expect(await has(target.partitions, 7)).toBe(false);
    expect(await follower.awaitVisible(7, 50)).toBe(false);
    await target.close();
    await ahead.local.close();
    await behind.local.close();
  });
});
