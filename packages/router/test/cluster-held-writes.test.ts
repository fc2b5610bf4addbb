import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbError, initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import {
  ErrorDetailSchema,
  NodeState,
  PartitionService,
  RpcError,
  Server,
  Status,
  addService,
  listen,
  shutdown,
  writeManyResultsToWire,
  writeResultToWire,
} from '@shoal/proto';
import type { RetryPolicy } from '../src/cluster/retry.ts';
import { withStubsClient } from './support/own-cluster-client.ts';

/**
 * Writes held behind the calls in flight to a leader that hangs (partitioned, stopped: no answer, no
 * reset) are given back unsent when those calls fail at their deadline, and the retry loop sends them
 * to the new leader: only the writes actually sent to the hung node are ambiguous. The nodes are
 * PartitionService stubs on 127.0.0.1: node 1 (the map's leader hint) never answers a write, node 2
 * leads now, node 3 names node 2.
 */
describe('writes held behind a hung leader', () => {
  const HUNG = 1;
  const LEADER = 2;
  const NODES = [HUNG, LEADER, 3];
  const table: TableSchema = { name: 't', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const partition: PartitionDescriptor = {
    ...initialPartitions(table.tableId, 1, 1)[0],
    replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' as const })),
    leaderHint: HUNG,
  };
  const policy: RetryPolicy = { attempts: 12, totalMs: 10_000, baseDelayMs: 5, maxDelayMs: 20 };
  /** Write calls each node was asked, and the writes they carried. */
  const asked = new Map<number, number[]>();
  const servers: Server[] = [];
  const addresses = new Map<number, string>();
  /** Releases the calls node 1 holds (after the test) so that its server can close. */
  const hung: Array<() => void> = [];

  const notLeader = (partitionId: bigint): RpcError =>
    RpcError.withDetail(Status.FAILED_PRECONDITION, 'not the leader', ErrorDetailSchema, {
      kind: { case: 'notLeader', value: { partitionId, leader: { id: BigInt(LEADER), address: addresses.get(LEADER)!, state: NodeState.UP } } },
    });

  beforeAll(async () => {
    for (const nodeId of NODES) {
      const server = new Server();
      const serve = async <T>(partitionId: bigint, writes: number, answer: () => T): Promise<T> => {
        asked.set(nodeId, [...(asked.get(nodeId) ?? []), writes]);
        if (nodeId === HUNG) await new Promise<void>((resolve) => hung.push(resolve));
        if (nodeId !== LEADER) throw notLeader(partitionId);
        return answer();
      };
      addService(server, PartitionService, {
        write: (request) => serve(request.target?.partitionId ?? 0n, 1, () => writeResultToWire({ applied: true, outcomes: [{ status: 'ok' }] }, 7n)),
        writeMany: (request) =>
          serve(request.target?.partitionId ?? 0n, request.writes.length, () =>
            writeManyResultsToWire(request.writes.map(() => ({ applied: true, outcomes: [{ status: 'ok' as const }] })), 7n),
          ),
      });
      addresses.set(nodeId, `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`);
      servers.push(server);
    }
  });

  afterAll(async () => {
    for (const release of hung) release();
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  it('are sent to the new leader once the calls before them fail; only the writes sent to the hung node are ambiguous', async () => {
    const until = async (condition: () => boolean): Promise<void> => {
      for (let polls = 0; !condition(); polls++) {
        if (polls > 400) throw new Error('the hung node was not asked in time');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await withStubsClient(
      [partition],
      addresses,
      async ({ partitions: client, counters }) => {
        const put = (name: string): Promise<unknown> =>
          client.write({ operations: [{ table, kind: 'Put', key: { pk: { S: name } }, item: { pk: { S: name } } }] }).then(
            () => 'ok',
            (error: unknown) => (error instanceof DynamoDbError ? error.type : error),
          );
        // Two write calls in flight to the hung node (one write each), then three writes held behind them.
        const sent = [put('sent-1')];
        await until(() => asked.get(HUNG)?.length === 1);
        sent.push(put('sent-2'));
        await until(() => asked.get(HUNG)?.length === 2);
        const held = ['held-1', 'held-2', 'held-3'].map(put);
        expect(await Promise.all(sent)).toEqual(['InternalServerError', 'InternalServerError']);
        expect(await Promise.all(held)).toEqual(['ok', 'ok', 'ok']);
        expect(asked.get(HUNG)).toEqual([1, 1]);
        expect(counters.ambiguousWritesTotal).toBe(2);
        expect(counters.exhaustedRetriesTotal).toBe(0);
      },
      { policy, rpcTimeoutMs: 2_000 },
    );
  });
});
