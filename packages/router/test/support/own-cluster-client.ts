import type { PartitionDescriptor } from '@shoal/model';
import { NodeState, type PartitionMapAnswer } from '@shoal/proto';
import { ChannelPool } from '../../src/cluster/channels.ts';
import { ClusterView } from '../../src/cluster/cluster-view.ts';
import { MetaClient } from '../../src/cluster/meta-client.ts';
import { zeroCounters, type ClusterCounters } from '../../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../../src/cluster/partition-client.ts';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../../src/cluster/retry.ts';

/**
 * A router's cluster client of a test's own: its own channels, view and counters, so that the test
 * can set its caches (a leader, an epoch, a dropped table) and count what it did. No watch: the view
 * changes only by the client's own refreshes.
 */
export interface OwnClusterClient {
  partitions: ClusterPartitionClient;
  view: ClusterView;
  counters: ClusterCounters;
}

export interface OwnClusterClientOptions {
  /** Default DEFAULT_RETRY_POLICY. */
  policy?: RetryPolicy;
  /** Default 5 s. */
  rpcTimeoutMs?: number;
  /** Default performance.now. */
  clock?: () => number;
}

/** Runs `work` with a client over the meta group at `metaAddresses` (its map read first); closes its channels after. */
export function withOwnClusterClient<T>(metaAddresses: readonly string[], work: (client: OwnClusterClient) => Promise<T>, options: OwnClusterClientOptions = {}): Promise<T> {
  return withClient(metaAddresses, undefined, work, options);
}

/**
 * The same over PartitionService stubs: the view holds the map of `partitions` on the nodes at
 * `addresses` (all up) from the start, and the meta client is never asked.
 */
export function withStubsClient<T>(
  partitions: PartitionDescriptor[],
  addresses: ReadonlyMap<number, string>,
  work: (client: OwnClusterClient) => Promise<T>,
  options: OwnClusterClientOptions = {},
): Promise<T> {
  const nodes = [...addresses].map(([nodeId, address]) => ({ $typeName: 'shoal.v1.NodeDescriptor' as const, id: BigInt(nodeId), address, state: NodeState.UP }));
  return withClient([...addresses.values()], { notModified: false, version: 1, partitions, nodes, tables: [] }, work, options);
}

async function withClient<T>(metaAddresses: readonly string[], map: PartitionMapAnswer | undefined, work: (client: OwnClusterClient) => Promise<T>, options: OwnClusterClientOptions): Promise<T> {
  const policy = options.policy ?? DEFAULT_RETRY_POLICY;
  const counters = zeroCounters();
  const channels = new ChannelPool();
  const view = new ClusterView();
  const meta = new MetaClient({ addresses: metaAddresses, channels, policy, counters });
  try {
    if (map === undefined) await meta.refresh(view);
    else view.apply(map);
    const partitions = new ClusterPartitionClient({ view, meta, channels, policy, rpcTimeoutMs: options.rpcTimeoutMs ?? 5_000, counters, clock: options.clock });
    return await work({ partitions, view, counters });
  } finally {
    channels.close();
  }
}
