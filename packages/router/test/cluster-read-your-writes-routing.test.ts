import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import {
  ErrorDetailSchema,
  NodeState,
  PartitionService,
  RpcError,
  Server,
  Status,
  addService,
  getRequestFromWire,
  getResultToWire,
  listen,
  shutdown,
  writeResultToWire,
  type PartitionMapAnswer,
} from '@shoal/proto';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import type { ClusterCounters } from '../src/cluster/metrics.ts';
import type { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import { classifyFailure } from '../src/cluster/retry.ts';
import { withStubsClient } from './support/own-cluster-client.ts';

/**
 * What a router does for read-your-writes: it keeps the applied index its acknowledged writes were
 * answered with, per partition and bounded by the map, sends it with its eventual reads, sends a read
 * a replica refused as behind to the leader, and skips that replica for reads asking as much for a
 * while. The nodes here are PartitionService stubs on 127.0.0.1 that record what they were asked.
 */

const mapOf = (version: number, partitions: PartitionDescriptor[]): PartitionMapAnswer => ({ notModified: false, version, partitions, nodes: [], tables: [] });

describe('the written indexes a router keeps', () => {
  const [left, right] = initialPartitions(9, 2, 1);

  it('keeps the highest applied index answered per partition', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    expect(view.writtenThrough(left.id)).toBe(0n);
    view.noteWritten(left.id, 12n);
    view.noteWritten(left.id, 7n);
    view.noteWritten(right.id, 3n);
    // An answer without an index (0n) changes nothing.
    view.noteWritten(right.id, 0n);
    expect(view.writtenThrough(left.id)).toBe(12n);
    expect(view.writtenThrough(right.id)).toBe(3n);
  });

  it('forgets the partitions a newer map no longer lists, and only those', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    view.noteWritten(left.id, 5n);
    view.noteWritten(right.id, 6n);
    expect(view.writtenPartitions).toBe(2);
    // An older map changes nothing.
    view.apply(mapOf(1, [left]));
    expect(view.writtenPartitions).toBe(2);
    view.apply(mapOf(2, [left]));
    expect(view.writtenPartitions).toBe(1);
    expect(view.writtenThrough(left.id)).toBe(5n);
    expect(view.writtenThrough(right.id)).toBe(0n);
  });

  it('a ReplicaBehind answer is its own kind of failure', () => {
    const error = RpcError.withDetail(Status.FAILED_PRECONDITION, 'behind', ErrorDetailSchema, {
      kind: { case: 'replicaBehind', value: { partitionId: 1n, appliedIndex: 3n, minAppliedIndex: 5n } },
    });
    expect(classifyFailure(error)).toEqual({ kind: 'replicaBehind', message: 'behind', appliedIndex: 3n });
  });
});

describe('eventual reads of a router that wrote', () => {
  const LEADER = 1;
  const NODES = [1, 2, 3];
  const WRITTEN_AT = 42n;
  /** How long a replica that refused is skipped (REPLICA_BEHIND_HOLD_MS of partition-client.ts). */
  const HOLD_MS = 1_000;
  const table: TableSchema = { name: 't', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const key = { pk: { S: 'k' } };
  /** The partition as the map describes it, hinting `leaderHint` as its leader (a follower: a stale hint). */
  const partitionHinting = (leaderHint: number): PartitionDescriptor => ({
    ...initialPartitions(table.tableId, 1, 1)[0],
    replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' as const })),
    leaderHint,
  });
  /** Per node: the index its replica has applied; an eventual read asking more is refused. Set by each test. */
  const applied = new Map<number, bigint>();
  /** Whether the leader, once it refused a read, has applied everything (a leader just elected, catching up). */
  let leaderCatchesUpOnRefusal = false;
  /** Every Get, in order: the node asked, the min_applied_index it carried (0n: none), whether consistent. */
  let asked: { nodeId: number; minAppliedIndex: bigint; consistent: boolean }[] = [];
  const servers: Server[] = [];
  const addresses = new Map<number, string>();

  beforeAll(async () => {
    for (const nodeId of NODES) {
      const server = new Server();
      addService(server, PartitionService, {
        write: async (request) => {
          if (nodeId !== LEADER) {
            throw RpcError.withDetail(Status.FAILED_PRECONDITION, 'not the leader', ErrorDetailSchema, {
              kind: { case: 'notLeader', value: { partitionId: request.target?.partitionId ?? 0n, leader: { id: BigInt(LEADER), address: addresses.get(LEADER)!, state: NodeState.UP } } },
            });
          }
          return writeResultToWire({ applied: true, outcomes: [{ status: 'ok' }] }, WRITTEN_AT);
        },
        get: async (request) => {
          const { options } = getRequestFromWire(request);
          const minAppliedIndex = options.consistent ? 0n : (options.minAppliedIndex ?? 0n);
          asked.push({ nodeId, minAppliedIndex, consistent: options.consistent });
          // A consistent read passes ReadIndex on any replica; an eventual one waits for nothing here.
          const has = applied.get(nodeId) ?? 0n;
          if (minAppliedIndex > has) {
            if (nodeId === LEADER && leaderCatchesUpOnRefusal) applied.set(LEADER, WRITTEN_AT);
            throw RpcError.withDetail(Status.FAILED_PRECONDITION, 'behind', ErrorDetailSchema, {
              kind: { case: 'replicaBehind', value: { partitionId: request.target?.partitionId ?? 0n, appliedIndex: has, minAppliedIndex } },
            });
          }
          return getResultToWire({ item: { ...key, from: { N: String(nodeId) } }, size: 10 });
        },
      });
      addresses.set(nodeId, `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`);
      servers.push(server);
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  /** A router over the stubs with its own view (the map of `partition`, the stubs' addresses) and a clock the test moves. */
  async function withRouter(
    partition: PartitionDescriptor,
    test: (router: { client: ClusterPartitionClient; view: ClusterView; counters: ClusterCounters; clock: { nowMs: number } }) => Promise<void>,
  ): Promise<void> {
    const clock = { nowMs: 0 };
    asked = [];
    try {
      await withStubsClient([partition], addresses, ({ partitions: client, view, counters }) => test({ client, view, counters, clock }), { clock: () => clock.nowMs });
    } finally {
      leaderCatchesUpOnRefusal = false;
    }
  }

  /** Eventual reads one after the other (each in an event-loop turn of its own); the nodes that answered them. */
  async function readsInTurn(client: ClusterPartitionClient, reads: number): Promise<string[]> {
    const servedBy: string[] = [];
    for (let i = 0; i < reads; i++) servedBy.push(((await client.get({ table, key }, { consistent: false }))?.item.from as { N: string }).N);
    return servedBy;
  }

  const asksOf = (nodeId: number): number => asked.filter((ask) => ask.nodeId === nodeId).length;

  it('send the index the write was answered with, and go to the leader when a follower is behind', async () => {
    for (const nodeId of NODES) applied.set(nodeId, nodeId === LEADER ? WRITTEN_AT : 1n);
    await withRouter(partitionHinting(LEADER), async ({ client, view, counters }) => {
      // Before any write: eventual reads ask for nothing and any voter answers.
      await readsInTurn(client, 3);
      expect(asked.map((ask) => ask.minAppliedIndex)).toEqual([0n, 0n, 0n]);
      expect(counters.replicaBehindRedirectsTotal).toBe(0);

      await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
      expect(view.writtenThrough(partitionHinting(LEADER).id)).toBe(WRITTEN_AT);
      asked = [];
      const READS = 6;
      expect(await readsInTurn(client, READS)).toEqual(Array.from({ length: READS }, () => String(LEADER)));
      // Every read asked for the write's index; each follower refused once (then skipped: the clock
      // stands still) and the read it refused went to the leader next.
      expect(asked.every((ask) => ask.minAppliedIndex === WRITTEN_AT)).toBe(true);
      expect(asksOf(LEADER)).toBe(READS);
      expect([asksOf(2), asksOf(3)]).toEqual([1, 1]);
      asked.forEach((ask, i) => {
        if (ask.nodeId !== LEADER) expect(asked[i + 1]?.nodeId).toBe(LEADER);
      });
      expect(counters.replicaBehindRedirectsTotal).toBe(2);

      // A consistent read goes to the leader and needs no index.
      asked = [];
      await client.get({ table, key }, { consistent: true });
      expect(asked).toEqual([{ nodeId: LEADER, minAppliedIndex: 0n, consistent: true }]);
    });
  });

  it('skip a follower lagging long for a while after it refused, and ask it again after that', async () => {
    // Node 2 has applied the write; node 3 lags.
    for (const nodeId of NODES) applied.set(nodeId, nodeId === 3 ? 1n : WRITTEN_AT);
    await withRouter(partitionHinting(LEADER), async ({ client, counters, clock }) => {
      await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
      asked = [];
      // One refusal, then the reads spread over the leader and node 2 alone.
      const served = await readsInTurn(client, 9);
      expect(asksOf(3)).toBe(1);
      expect(new Set(served)).toEqual(new Set(['1', '2']));
      expect(counters.replicaBehindRedirectsTotal).toBe(1);

      // Still within the hold: not asked.
      clock.nowMs += HOLD_MS - 1;
      await readsInTurn(client, 6);
      expect(asksOf(3)).toBe(1);

      // Past it: asked once more (three reads in turn reach every voter), refused, skipped again.
      clock.nowMs += 2;
      await readsInTurn(client, 6);
      expect(asksOf(3)).toBe(2);
      expect(counters.replicaBehindRedirectsTotal).toBe(2);

      // Caught up: asked again once the hold is over, it answers and stays in the spread.
      applied.set(3, WRITTEN_AT);
      clock.nowMs += HOLD_MS + 1;
      asked = [];
      expect(await readsInTurn(client, 6)).toContain('3');
      expect(asksOf(3)).toBe(2);
      expect(counters.replicaBehindRedirectsTotal).toBe(2);
    });
  });

  it('learn the leader from writes only, and send a read a follower refused to it', async () => {
    // Both followers lag; the map hints follower 2 (stale).
    for (const nodeId of NODES) applied.set(nodeId, nodeId === LEADER ? WRITTEN_AT : 1n);
    const partition = partitionHinting(2);
    await withRouter(partition, async ({ client, view }) => {
      // A consistent read answered by a follower (ReadIndex) says nothing of who leads.
      await client.get({ table, key }, { consistent: true });
      expect(asked.map((ask) => ask.nodeId)).toEqual([2]);
      expect(view.leaderOf(partition.id)).toBeUndefined();

      // A write to the hinted follower is redirected; the leader's answer teaches it.
      await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
      expect(view.leaderOf(partition.id)).toBe(LEADER);

      // Each read a follower refuses goes to the leader next, not to the other follower (the hint).
      asked = [];
      expect(await readsInTurn(client, 6)).toEqual(Array.from({ length: 6 }, () => String(LEADER)));
      asked.forEach((ask, i) => {
        if (ask.nodeId !== LEADER) expect(asked[i + 1]?.nodeId).toBe(LEADER);
      });
      expect([asksOf(2), asksOf(3)]).toEqual([1, 1]);
    });
  });

  it('ask a leader that refused (just elected) again once every voter refused, and no more skip it once it answered', async () => {
    for (const nodeId of NODES) applied.set(nodeId, 1n);
    leaderCatchesUpOnRefusal = true;
    await withRouter(partitionHinting(LEADER), async ({ client, counters }) => {
      await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
      asked = [];
      // Every voter refuses once; after the pause the voters are asked again in turn until the leader answers.
      expect(await readsInTurn(client, 1)).toEqual([String(LEADER)]);
      expect(new Set(asked.slice(0, 3).map((ask) => ask.nodeId))).toEqual(new Set(NODES));
      expect(asked.at(-1)?.nodeId).toBe(LEADER);
      expect(counters.replicaBehindRedirectsTotal).toBe(asked.length - 1);

      // Its answer cleared its refusal; the followers' still hold: the next reads go to it alone.
      asked = [];
      expect(await readsInTurn(client, 3)).toEqual(['1', '1', '1']);
      expect(asked.map((ask) => ask.nodeId)).toEqual([LEADER, LEADER, LEADER]);
    });
  });
});
