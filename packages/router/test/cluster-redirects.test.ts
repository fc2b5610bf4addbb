import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { ErrorDetailSchema, NodeState, PartitionService, RpcError, Server, Status, addService, listen, shutdown, writeResultToWire } from '@shoal/proto';
import type { RetryPolicy } from '../src/cluster/retry.ts';
import { withStubsClient } from './support/own-cluster-client.ts';

/**
 * A node that failed earlier in a call is passed over for the rest of it, but not once a peer names
 * it the leader: a candidate that answered NotLeader without a leader (an election under way) and
 * then won must be asked, or the call spends its whole budget on followers pointing at it. The nodes
 * are PartitionService stubs on 127.0.0.1 that count the writes they were asked.
 */
describe('a write whose leader failed earlier in the same call', () => {
  const NODES = [1, 2, 3];
  const WINNER = 1;
  const table: TableSchema = { name: 't', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const key = { pk: { S: 'k' } };
  const partition: PartitionDescriptor = {
    ...initialPartitions(table.tableId, 1, 1)[0],
    replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' as const })),
    leaderHint: WINNER,
  };
  // Few attempts, short pauses: the call without the fix ends in ServiceUnavailable quickly.
  const policy: RetryPolicy = { attempts: 12, totalMs: 10_000, baseDelayMs: 5, maxDelayMs: 20 };
  const writesAsked = new Map<number, number>();
  const servers: Server[] = [];
  const addresses = new Map<number, string>();

  const notLeader = (partitionId: bigint, leader?: number): RpcError =>
    RpcError.withDetail(Status.FAILED_PRECONDITION, 'not the leader', ErrorDetailSchema, {
      kind: {
        case: 'notLeader',
        value: { partitionId, leader: leader === undefined ? undefined : { id: BigInt(leader), address: addresses.get(leader)!, state: NodeState.UP } },
      },
    });

  beforeAll(async () => {
    for (const nodeId of NODES) {
      const server = new Server();
      addService(server, PartitionService, {
        write: async (request) => {
          const asked = (writesAsked.get(nodeId) ?? 0) + 1;
          writesAsked.set(nodeId, asked);
          const partitionId = request.target?.partitionId ?? 0n;
          // The winner was still a candidate when first asked; the others know it won.
          if (nodeId === WINNER) {
            if (asked === 1) throw notLeader(partitionId);
            return writeResultToWire({ applied: true, outcomes: [{ status: 'ok' }] }, 7n);
          }
          throw notLeader(partitionId, WINNER);
        },
      });
      addresses.set(nodeId, `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`);
      servers.push(server);
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  it('goes to it once a follower names it the leader', async () => {
    await withStubsClient(
      [partition],
      addresses,
      async ({ partitions: client, counters }) => {
        await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
        expect(writesAsked.get(WINNER)).toBe(2);
        // One follower (or both) named the winner in between; no write went anywhere after it answered.
        const followerAsks = (writesAsked.get(2) ?? 0) + (writesAsked.get(3) ?? 0);
        expect(followerAsks).toBeGreaterThanOrEqual(1);
        expect(followerAsks).toBeLessThanOrEqual(2);
        expect(counters.exhaustedRetriesTotal).toBe(0);
      },
      { policy },
    );
  });
});
