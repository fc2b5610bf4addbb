import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableRecord, type TableSchema } from '@shoal/model';
import {
  MetaService,
  NodeState,
  PartitionService,
  RpcError,
  Server,
  Status,
  addService,
  backfillIndexRequestFromWire,
  listen,
  partitionMapResponseToWire,
  rangeReadResultToWire,
  shutdown,
} from '@shoal/proto';
import { ChannelPool } from '../src/cluster/channels.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { MetaClient } from '../src/cluster/meta-client.ts';
import { zeroCounters } from '../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../src/cluster/retry.ts';

/**
 * The rounds of a GSI backfill call (ClusterPartitionClient.backfillIndex). A base partition's leader
 * waits for the split halves its own node holds, not for one moved elsewhere since, so the router asks
 * the halves the map shows after each round: here every call splits its partition once more (a new
 * half in the next map), seven times, and each half must be asked (a bound of 4 rounds missed the
 * last ones); a map fetch that fails between rounds fails the call instead of taking the old map's
 * lack of a half for none; a half the parent's leader names (its split records) that the map does
 * not show yet is waited for, then asked. The node and the meta group are stubs on 127.0.0.1.
 */

const GSI = { name: 'byUser', kind: 'GSI' as const, indexId: 10, hashKey: { name: 'user', type: 'S' as const }, projection: { type: 'KEYS_ONLY' as const } };
const table: TableSchema = { name: 'orders', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [GSI] };
const record: TableRecord = { schema: table, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
const SLICES = 8;
/** Partition ids 1..SLICES over the table's space, one slice each. */
const slices = initialPartitions(table.tableId, SLICES, 1);
/** The map GSI_VERSION + splits shows: partitions 1..splits+1, the last one from its slice to the space's end. */
const GSI_VERSION = 5;
const partitionsAfter = (splits: number): PartitionDescriptor[] =>
  slices.slice(0, splits + 1).map((slice, i) => ({ ...slice, ...(i === splits ? { endKey: slices[SLICES - 1]!.endKey } : {}), replicas: [{ nodeId: 1, role: 'voter' }], leaderHint: 1 }));

describe('the rounds of a GSI backfill call', () => {
  const servers: Server[] = [];
  let nodeAddress = '';
  let metaAddress = '';
  let splits = 0;
  /** How many splits the stub makes in all (one per backfill call of the newest half). */
  let splitsWanted = 0;
  /** The splits the meta group's map shows, and how many more fetches it answers before it shows the rest. */
  let mapSplits = 0;
  let revealIn = 0;
  let metaDown = false;
  let asked: Array<{ partitionId: number; createdAt: number | undefined }> = [];

  const nodes = (): Array<{ $typeName: 'shoal.v1.NodeDescriptor'; id: bigint; address: string; state: NodeState }> => [
    { $typeName: 'shoal.v1.NodeDescriptor', id: 1n, address: nodeAddress, state: NodeState.UP },
  ];
  const mapNow = () => ({ notModified: false as const, version: GSI_VERSION + mapSplits, partitions: partitionsAfter(mapSplits), nodes: nodes(), tables: [record] });

  beforeAll(async () => {
    const node = new Server();
    addService(node, PartitionService, {
      backfillIndex: async (request) => {
        const { target, request: backfill } = backfillIndexRequestFromWire(request);
        const partitionId = Number(target.partitionId);
        asked.push({ partitionId, createdAt: backfill.indexCreatedAtMapVersion });
        // The newest half splits while its backfill runs; answered done (its own part is), naming the
        // right half it split into (partition p's is p + 1), as a leader does from its split records.
        if (partitionId === splits + 1 && splits < splitsWanted) splits += 1;
        return { done: true, splitPartitionIds: partitionId <= splits ? [BigInt(partitionId + 1)] : [] };
      },
      readRange: async () => rangeReadResultToWire({ items: [], count: 0, scannedCount: 0, bytesRead: 0 }),
    });
    nodeAddress = `127.0.0.1:${await listen(node, '127.0.0.1', 0)}`;
    const meta = new Server();
    addService(meta, MetaService, {
      getPartitionMap: async (request) => {
        if (metaDown) throw new RpcError(Status.UNAVAILABLE, 'meta group unreachable');
        if (mapSplits < splits) {
          if (revealIn <= 0) mapSplits = splits;
          else revealIn -= 1;
        }
        const now = mapNow();
        return partitionMapResponseToWire(request.knownVersion >= BigInt(now.version) ? { notModified: true, version: now.version } : now);
      },
    });
    metaAddress = `127.0.0.1:${await listen(meta, '127.0.0.1', 0)}`;
    servers.push(node, meta);
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  beforeEach(() => {
    splits = 0;
    mapSplits = 0;
    revealIn = 0;
    metaDown = false;
    asked = [];
  });

  /** A router's partition client whose view holds the map at the GSI's version (it first showed the GSI there). */
  const router = (metaPolicy: RetryPolicy = DEFAULT_RETRY_POLICY): { client: ClusterPartitionClient; view: ClusterView; close(): void } => {
    const counters = zeroCounters();
    const channels = new ChannelPool();
    const view = new ClusterView();
    view.apply(mapNow());
    const meta = new MetaClient({ addresses: [metaAddress], channels, policy: metaPolicy, counters });
    return { client: new ClusterPartitionClient({ view, meta, channels, policy: DEFAULT_RETRY_POLICY, rpcTimeoutMs: 5_000, counters }), view, close: () => channels.close() };
  };

  it('asks every split half the map shows after each round, however many rounds that takes, each call with the version of the first map showing the GSI', async () => {
    splitsWanted = SLICES - 1;
    const { client, view, close } = router();
    try {
      await client.backfillIndex(table, GSI.name);
      expect(splits).toBe(SLICES - 1);
      expect(view.version).toBe(GSI_VERSION + SLICES - 1);
      // One call each: partition 1, then each new half in the round after its parent's.
      expect(asked).toEqual(Array.from({ length: SLICES }, (_, i) => ({ partitionId: i + 1, createdAt: GSI_VERSION })));
    } finally {
      close();
    }
  }, 30_000);

  it('fails (to be tried again) when the map cannot be fetched after a round, rather than ending with the halves the old map lacks', async () => {
    splitsWanted = 1;
    const { client, close } = router({ attempts: 3, totalMs: 2_000, baseDelayMs: 10, maxDelayMs: 50 });
    try {
      metaDown = true;
      await expect(client.backfillIndex(table, GSI.name)).rejects.toMatchObject({ name: 'ServiceUnavailable' });
      expect(asked.map((call) => call.partitionId)).toEqual([1]);
      // The attempt made again once the meta group answers reaches the half.
      metaDown = false;
      await client.backfillIndex(table, GSI.name);
      expect(asked.map((call) => call.partitionId)).toEqual([1, 1, 2]);
    } finally {
      close();
    }
  }, 30_000);

  it('waits for a half the parent\'s leader names until the map shows it, then asks it (a split the meta group records late)', async () => {
    splitsWanted = 1;
    // The map shows the split only at the fourth fetch after it applied.
    revealIn = 3;
    const { client, view, close } = router();
    try {
      await client.backfillIndex(table, GSI.name);
      expect(view.version).toBe(GSI_VERSION + 1);
      expect(asked.map((call) => call.partitionId)).toEqual([1, 2]);
    } finally {
      close();
    }
  }, 30_000);
});
