import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeItemKey,
  initialPartitions,
  partitionContains,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type PartitionDescriptor,
  type PartitionWrite,
  type RangeReadRequest,
  type TableSchema,
} from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { openLocalStore, partitionBound, type LocalStore, type PartitionBound, type TransactionRecord } from '@shoal/storage';
import {
  PartitionReplica,
  encodePartitionCommand,
  proposePartitionWrite,
  type PartitionCommand,
  type RestoredPartition,
  type StagedPayload,
} from '@shoal/node';
import { agreedLeader, pump, whilePumping } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';
import { oneReplica, startPartitionMember, stopPartitionMember, type PartitionMember } from './fixtures/partition-member.ts';
import { readSnapshotData } from './fixtures/snapshot-data.ts';

const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });
const LSI: IndexSchema = { name: 'byRank', kind: 'LSI', indexId: 41, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'rank', type: 'N' }, projection: { type: 'KEYS_ONLY' } };
const GSI: IndexSchema = { name: 'byCity', kind: 'GSI', indexId: 42, hashKey: { name: 'city', type: 'S' }, projection: { type: 'ALL' } };
const TABLE: TableSchema = { name: 'snap', tableId: 40, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [LSI, GSI] };
const [LEFT, RIGHT] = initialPartitions(TABLE.tableId, 2, 1);
const PARTITIONS = [LEFT, RIGHT];

const keyOf = (item: Item): Uint8Array => encodeItemKey(TABLE.tableId, item.pk, item.sk);
const ownerOf = (item: Item): PartitionDescriptor => PARTITIONS.find((p) => partitionContains(p, keyOf(item)))!;
const putWrite = (item: Item): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: item.pk, sk: item.sk }, item }] });
const command = (c: PartitionCommand): Uint8Array => encodePartitionCommand(c);

/** An item key in `partition` (deterministic: the first of a fixed sequence). */
function itemIn(partition: PartitionDescriptor, tag: string): Item {
  for (let i = 0; i < 1_000; i++) {
    const item: Item = { pk: S(`${tag}${i}`), sk: N(0), rank: N(1), city: S('txcity') };
    if (ownerOf(item) === partition) return item;
  }
  throw new Error(`no key of ${tag} in partition ${partition.id}`);
}

/** Two replicas (both partitions of TABLE) over one store, applying through their own replica as the host would. */
async function replicasOver(local: LocalStore, restored?: RestoredPartition[]): Promise<Map<number, PartitionReplica>> {
  const replicas = new Map<number, PartitionReplica>();
  for (const partition of PARTITIONS) {
    replicas.set(
      partition.id,
      await PartitionReplica.open(partition.id, local.partitions, {
        boundOf: () => partitionBound(partition),
        tableOf: () => TABLE,
        onRestore: async (r) => void restored?.push(r),
      }),
    );
  }
  return replicas;
}

/** Applies the items (each through its partition's replica), then an intent and a coordinated record in each partition. */
async function populate(replicas: Map<number, PartitionReplica>, items: Item[], tag: string): Promise<void> {
  const next = new Map<number, number>(PARTITIONS.map((p) => [p.id, 1]));
  const apply = async (partition: PartitionDescriptor, data: Uint8Array): Promise<unknown> => {
    const index = next.get(partition.id)!;
    next.set(partition.id, index + 1);
    return replicas.get(partition.id)!.apply(data, index);
  };
  for (const item of items) await apply(ownerOf(item), command({ kind: 'write', write: putWrite(item) }));
  for (const partition of PARTITIONS) {
    const id = `${tag}-${partition.id}`;
    const record: TransactionRecord = { id, state: 'PENDING', participants: [partition.id, ...PARTITIONS.filter((p) => p !== partition).map((p) => p.id)], deadline: 4_000_000_000_000 };
    await apply(partition, command({ kind: 'beginTransaction', record }));
    const prepared = (await apply(partition, command({ kind: 'prepareTransaction', transaction: { id, coordinator: partition.id, deadline: record.deadline }, write: putWrite(itemIn(partition, tag)) }))) as { applied: boolean };
    expect(prepared.applied).toBe(true);
  }
  // Applied writes are staged; the host waits for them (settled) before it opens a snapshot.
  for (const replica of replicas.values()) await replica.settled();
}

/** Stages a payload in a file, as the receiving transport does. */
async function stage(path: string, bytes: Uint8Array): Promise<StagedPayload> {
  await writeFile(path, bytes);
  return { path, offset: 0, size: bytes.length };
}

const scan = (extra: Partial<RangeReadRequest> = {}): RangeReadRequest => ({ table: TABLE, forward: true, maxBytes: 1 << 30, select: 'ALL_ATTRIBUTES', ...extra });

/** What one partition holds in a store: items, LSI and GSI entries (GSI queried per city), as reads within its bound see them. */
async function contents(local: LocalStore, bound: PartitionBound): Promise<unknown> {
  const store = local.partitions;
  const items = (await store.readRange(scan(), undefined, bound)).items;
  const lsi = (await store.readRange(scan({ indexName: LSI.name }), undefined, bound)).items;
  const gsi = [];
  for (const city of ['x', 'y', 'z', 'txcity']) gsi.push((await store.readRange(scan({ indexName: GSI.name, hashValue: S(city) }), undefined, bound)).items);
  return { items, lsi, gsi };
}

/** The per-space counters of the store agree with the entries of both partitions counted one by one. */
async function expectCountersExact(local: LocalStore): Promise<void> {
  for (const indexName of [undefined, LSI.name, GSI.name]) {
    const counted = await local.partitions.statistics(TABLE, indexName);
    const measured = await Promise.all(PARTITIONS.map((p) => local.partitions.statistics(TABLE, indexName, partitionBound(p))));
    expect(counted).toEqual({ itemCount: measured[0].itemCount + measured[1].itemCount, sizeBytes: measured[0].sizeBytes + measured[1].sizeBytes });
  }
}

const itemArbitrary = fc.record({
  pk: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j').map(S),
  sk: fc.integer({ min: 0, max: 30 }).map(N),
  rank: fc.integer({ min: 0, max: 5 }).map(N),
  city: fc.option(fc.constantFrom('x', 'y', 'z').map(S), { nil: undefined }),
}).map((r): Item => (r.city === undefined ? { pk: r.pk, sk: r.sk, rank: r.rank } : { pk: r.pk, sk: r.sk, rank: r.rank, city: r.city }));

describe('a partition snapshot out of a store shared with another partition, installed into another store', () => {
  let root = '';
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-partition-snapshot-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('carries exactly the partition (items, LSI and GSI entries, intents, its records, applied index) and replaces only it', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(itemArbitrary, { maxLength: 60 }), fc.array(itemArbitrary, { maxLength: 60 }), async (sourceItems, targetItems) => {
        run++;
        const source = await openLocalStore({ dataDir: join(root, `source-${run}`) });
        const target = await openLocalStore({ dataDir: join(root, `target-${run}`) });
        try {
          const sourceReplicas = await replicasOver(source);
          const restored: RestoredPartition[] = [];
          const targetReplicas = await replicasOver(target, restored);
          await populate(sourceReplicas, sourceItems, 'src');
          await populate(targetReplicas, targetItems, 'old');
          const rightBefore = await contents(target, partitionBound(RIGHT));

          const leftAtSnapshot = await contents(source, partitionBound(LEFT));
          const read = sourceReplicas.get(LEFT.id)!.openSnapshotPayload();
          // Applied after the snapshot opened: not in it.
          const late = { ...itemIn(LEFT, 'late'), city: S('x') };
          await sourceReplicas.get(LEFT.id)!.apply(command({ kind: 'write', write: putWrite(late) }), 1_000);
          const payload = await stage(join(root, `payload-${run}`), await readSnapshotData(await read()));
          const snapshotIndex = 3;
          await targetReplicas.get(LEFT.id)!.installSnapshot({ index: snapshotIndex, data: await sourceReplicas.get(LEFT.id)!.snapshot(), payload });

          const sourceApplied = sourceItems.filter((item) => ownerOf(item) === LEFT).length + 2;
          expect(targetReplicas.get(LEFT.id)!.appliedIndex()).toBe(Math.max(sourceApplied, snapshotIndex));
          expect(await target.partitions.appliedIndex(LEFT.id)).toBe(Math.max(sourceApplied, snapshotIndex));
          const hex = (b: PartitionBound) => [Buffer.from(b.start).toString('hex'), Buffer.from(b.end).toString('hex')];
          expect(restored.map((r) => hex(r.bound))).toEqual([hex(partitionBound(LEFT))]);
          // The target's left partition is the source's as the snapshot opened (not the late write)...
          expect(await contents(target, partitionBound(LEFT))).toEqual(leftAtSnapshot);
          // ...its right partition untouched, and the per-space counters still exact.
          expect(await contents(target, partitionBound(RIGHT))).toEqual(rightBefore);
          await expectCountersExact(target);
          // Intents: the source's left one came, the target's old left one went, its right one stayed.
          const intents = (await target.partitions.transactionsWithIntents()).map((t) => t.transaction.id).sort();
          expect(intents).toEqual([`old-${RIGHT.id}`, `src-${LEFT.id}`]);
          // Records: those the left partition coordinates, likewise.
          expect(await target.partitions.transactionRecord(`src-${LEFT.id}`)).toEqual(await source.partitions.transactionRecord(`src-${LEFT.id}`));
          expect(await target.partitions.transactionRecord(`old-${LEFT.id}`)).toBeUndefined();
          expect((await target.partitions.transactionRecord(`old-${RIGHT.id}`))?.state).toBe('PENDING');
          expect(await target.partitions.transactionRecord(`src-${RIGHT.id}`)).toBeUndefined();
        } finally {
          await source.close();
          await target.close();
        }
      }),
      { numRuns: 8, seed: 4242 },
    );
  });

  it('says it is restoring while the store restores the payload in batches (its reads are refused meanwhile), and not after', async () => {
    const source = await openLocalStore({ dataDir: join(root, 'restoring-source') });
    const target = await openLocalStore({ dataDir: join(root, 'restoring-target') });
    try {
      await populate(await replicasOver(source), Array.from({ length: 40 }, (_, i) => ({ pk: S(`r${i}`), sk: N(i), rank: N(1) })), 'r');
      const sourceReplica = (await replicasOver(source)).get(LEFT.id)!;
      const payload = await stage(join(root, 'restoring-payload'), await readSnapshotData(await sourceReplica.openSnapshotPayload()()));
      const replica = (await replicasOver(target)).get(LEFT.id)!;
      expect(replica.restoring()).toBe(false);
      let seenRestoring = false;
      let installed = false;
      const installing = replica.installSnapshot({ index: 3, data: await sourceReplica.snapshot(), payload }).finally(() => void (installed = true));
      // The store's batches are LevelDB writes: the event loop turns between them.
      while (!installed) {
        seenRestoring ||= replica.restoring();
        await new Promise((resolve) => setImmediate(resolve));
      }
      await installing;
      expect(seenRestoring).toBe(true);
      expect(replica.restoring()).toBe(false);
      expect(await contents(target, partitionBound(LEFT))).toEqual(await contents(source, partitionBound(LEFT)));
    } finally {
      await source.close();
      await target.close();
    }
  });

  it('refuses a payload that is not a partition snapshot, changing nothing', async () => {
    const local = await openLocalStore({ dataDir: join(root, 'refuse') });
    try {
      const replicas = await replicasOver(local);
      await populate(replicas, [{ pk: S('a'), sk: N(1), rank: N(1) }], 'r');
      const before = await contents(local, partitionBound(LEFT));
      const replica = replicas.get(LEFT.id)!;
      const applied = replica.appliedIndex();
      const install = async (name: string, bytes: Uint8Array) => replica.installSnapshot({ index: 9, data: await replica.snapshot(), payload: await stage(join(root, name), bytes) });
      await expect(install('no-bound', new Uint8Array([0, 0, 0, 2, 123, 125]))).rejects.toThrow(/header without/);
      await expect(install('cut', new Uint8Array([0, 0, 0, 9]))).rejects.toThrow(/not a partition snapshot|running past/);
      // A payload of another group's snapshot changes nothing either.
      const other = replicas.get(RIGHT.id)!;
      const payloadOfRight = await readSnapshotData(await other.openSnapshotPayload()());
      await expect(install('other-group', payloadOfRight)).rejects.toThrow(/received a snapshot of group/);
      expect(replica.appliedIndex()).toBe(applied);
      expect(await contents(local, partitionBound(LEFT))).toEqual(before);
    } finally {
      await local.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Three (then four) MultiRaftHosts, each over its own Raft log and LevelDB store, compacting.

const GROUP = LEFT.id;
const POLICY = { every: 20, keep: 5 };

type Member = PartitionMember & { replica: PartitionReplica };

const startMember = (network: MemoryNetwork, nodeId: NodeId, dir: string): Promise<Member> =>
  startPartitionMember(network, nodeId, dir, { seed: 5, host: { snapshotPolicy: POLICY }, ...oneReplica(GROUP, { boundOf: () => partitionBound(LEFT), tableOf: () => TABLE }) });

describe('partition replicas on hosts compacting their logs', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: Member[] = [];
  let written = 0;

  // The voters' leader (a learner may not know it yet).
  const leader = (): Member | undefined => agreedLeader(members.filter((m) => m.nodeId <= 3), GROUP);
  async function writeItems(count: number): Promise<void> {
    for (let i = 0; i < count; i++, written++) {
      await pump(members, () => leader() !== undefined, 'a leader');
      // A key of the partition: the snapshot carries its range only.
      const base = itemIn(LEFT, `k${written % 17}-`);
      const item: Item = { pk: base.pk, sk: N(written), rank: N(written % 4), ...(written % 3 === 0 ? { city: S('x') } : {}) };
      await whilePumping(members, proposePartitionWrite(leader()!.host, GROUP, putWrite(item)), 'a write');
    }
  }
  async function settled(): Promise<void> {
    const commit = (): number => Math.max(...members.map((m) => m.host.status()[0]?.commit ?? 0));
    await pump(members, () => members.every((m) => m.host.status()[0]?.applied === commit()), 'replicas applying');
  }
  const leftOf = (m: Member): Promise<unknown> => contents(m.local, partitionBound(LEFT));
  /**
   * Every member's partition once they all hold every write (a store may show an applied write a
   * moment after the host counts it applied): ticks until then (bounded), then checks they are equal.
   */
  async function converged(): Promise<{ items: Item[] }> {
    for (let attempt = 0; attempt < 500; attempt++) {
      const all = (await Promise.all(members.map(leftOf))) as Array<{ items: Item[] }>;
      if (all.every((c) => c.items.length === written)) {
        for (const c of all) expect(c).toEqual(all[0]);
        return all[0];
      }
      await pump(members, () => false, 'a tick', 1).catch(() => undefined);
    }
    throw new Error('the members never all held every write');
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-partition-compaction-'));
    members = await Promise.all([1, 2, 3].map((id) => startMember(network, id, join(root, `node-${id}`))));
    for (const m of members) await m.host.createGroup(GROUP, [1, 2, 3]);
  });
  afterAll(async () => {
    for (const m of members) await stopPartitionMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('the log\'s first index advances under writes (compaction)', async () => {
    await writeItems(30);
    const firstBefore = members.map((m) => m.logStore.group(GROUP).firstIndex());
    await writeItems(50);
    await settled();
    members.forEach((m, i) => {
      expect(m.logStore.group(GROUP).firstIndex()).toBeGreaterThan(firstBefore[i]);
      expect(m.host.stats.snapshotsTaken).toBeGreaterThanOrEqual(3);
      // No more than the policy keeps, plus what a snapshot interval adds.
      expect(m.logStore.group(GROUP).lastIndex() - m.logStore.group(GROUP).firstIndex()).toBeLessThan(POLICY.every + POLICY.keep + 5);
    });
  });

  it('a replica down while the others compacted past it catches up by snapshot, and all recover after a restart', async () => {
    const down = members.find((m) => m !== leader())!;
    await stopPartitionMember(network, down);
    members = members.filter((m) => m !== down);
    await writeItems(60);
    const again = await startMember(network, down.nodeId, down.dir);
    members = [...members, again];
    await writeItems(5);
    await settled();
    expect(again.host.stats.snapshotsRestored).toBeGreaterThanOrEqual(1);
    await converged();

    // Every member restarts from its compacted log and its store, and goes on.
    for (const m of members) await stopPartitionMember(network, m);
    members = await Promise.all(members.map((m) => startMember(network, m.nodeId, m.dir)));
    await writeItems(5);
    await settled();
    await converged();
  });

  it('a new member receives the partition by snapshot and serves it', async () => {
    const fourth = await startMember(network, 4, join(root, 'node-4'));
    await fourth.host.joinGroup(GROUP);
    members = [...members, fourth];
    await pump(members, () => leader() !== undefined, 'a leader');
    await whilePumping(members, leader()!.host.changeMembership(GROUP, { kind: 'addLearner', nodeId: 4 }), 'adding a learner');
    await writeItems(3);
    await settled();
    expect(fourth.host.stats.snapshotsRestored).toBe(1);
    expect(fourth.host.stats.entriesApplied).toBeLessThan(written);
    await converged();
    // Every payload staged (by the network, as the transport does) went once installed or not taken.
    const staged = (): string[] => readdirSync(tmpdir()).filter((name) => name.startsWith(`shoal-memory-network-${process.pid}-`));
    for (let attempt = 0; attempt < 100 && staged().length > 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(staged()).toEqual([]);
    await whilePumping(members, fourth.host.readIndex(GROUP), 'a read index on the learner');
  });
});
