import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Server,
  Status,
  addService,
  decodeWriteRequest,
  encodeWriteResponse,
  listen,
  partitionDescriptorToWire,
  shutdown,
} from '@shoal/proto';
import { withStubsClient } from './support/own-cluster-client.ts';

/**
 * A newer descriptor (a StaleEpoch answer's) moves a partition's calls to its epoch and its voters:
 * the retried call and every later one carry the new epoch to the new voters, none the old epoch
 * again (which a cache of call targets keyed by partition id rather than by descriptor would send).
 * The nodes are PartitionService stubs on 127.0.0.1 that record what they were asked.
 */
describe("the target of a partition's calls", () => {
  const table: TableSchema = { name: 't', tableId: 11, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const NODES = [1, 2];
  /** The partition's epoch on the nodes: an older one is refused with StaleEpoch carrying `current`. */
  let current: PartitionDescriptor;
  /** Each write: the node asked and the epoch it carried. */
  const asked: Array<{ nodeId: number; epoch: bigint }> = [];
  const servers: Server[] = [];
  const addresses = new Map<number, string>();
  const descriptor = (epoch: number, voters: number[]): PartitionDescriptor => ({
    ...initialPartitions(table.tableId, 1, 1)[0]!,
    epoch,
    replicas: voters.map((nodeId) => ({ nodeId, role: 'voter' as const })),
    leaderHint: voters[0],
  });

  beforeAll(async () => {
    for (const nodeId of NODES) {
      const server = new Server();
      addService(server, PartitionService, {}, {
        write: async (bytes) => {
          const epoch = decodeWriteRequest(bytes).target?.epoch ?? 0n;
          asked.push({ nodeId, epoch });
          if (epoch < BigInt(current.epoch)) {
            throw RpcError.withDetail(Status.FAILED_PRECONDITION, 'stale epoch', ErrorDetailSchema, { kind: { case: 'staleEpoch', value: { current: partitionDescriptorToWire(current) } } });
          }
          return encodeWriteResponse({ applied: true, outcomes: [{ status: 'ok' }] }, 1n);
        },
      });
      addresses.set(nodeId, `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`);
      servers.push(server);
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  const write = (pk: string) => ({ operations: [{ table, kind: 'Put' as const, key: { pk: { S: pk } }, item: { pk: { S: pk } } }] });

  it('carries the epoch of the newer descriptor a StaleEpoch taught, to its voters, from then on', async () => {
    current = descriptor(1, [1]);
    await withStubsClient([current], addresses, async ({ partitions, view }) => {
      await partitions.write(write('a'));
      expect(asked).toEqual([{ nodeId: 1, epoch: 1n }]);
      // The partition moves to node 2 at epoch 2: node 1 still refuses old epochs with the new descriptor.
      current = descriptor(2, [2]);
      view.forgetLeader(current.id);
      asked.length = 0;
      await partitions.write(write('b'));
      await partitions.write(write('c'));
      expect(asked).toEqual([
        { nodeId: 1, epoch: 1n },
        { nodeId: 2, epoch: 2n },
        { nodeId: 2, epoch: 2n },
      ]);
    });
  });
});

