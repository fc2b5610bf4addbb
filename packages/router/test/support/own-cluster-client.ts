import { ChannelPool } from '../../src/cluster/channels.ts';
import { ClusterView } from '../../src/cluster/cluster-view.ts';
import { MetaClient } from '../../src/cluster/meta-client.ts';
import { zeroCounters, type ClusterCounters } from '../../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../../src/cluster/partition-client.ts';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../../src/cluster/retry.ts';

/**
 * A router's cluster client of a test's own, beside the router under test: its own channels, view
 * and counters, so that the test can set its caches (a leader, an epoch, a dropped table) and count
 * what it did. No watch: the view is refreshed once, then changes only by the client's own refreshes.
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
}

/** Runs `work` with a client over the meta group at `metaAddresses` (its map read first); closes its channels after. */
export async function withOwnClusterClient<T>(metaAddresses: readonly string[], work: (client: OwnClusterClient) => Promise<T>, options: OwnClusterClientOptions = {}): Promise<T> {
  const policy = options.policy ?? DEFAULT_RETRY_POLICY;
  const counters = zeroCounters();
  const channels = new ChannelPool();
  const view = new ClusterView();
  const meta = new MetaClient({ addresses: metaAddresses, channels, policy, counters });
  try {
    await meta.refresh(view);
    const partitions = new ClusterPartitionClient({ view, meta, channels, policy, rpcTimeoutMs: options.rpcTimeoutMs ?? 5_000, counters });
    return await work({ partitions, view, counters });
  } finally {
    channels.close();
  }
}
