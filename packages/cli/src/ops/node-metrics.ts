import type { StorageNodeMetrics } from '@shoal/node';
import type { MetricSource, Series } from './metrics.ts';

/**
 * A storage node's metrics source: its plain numbers as `shoal_node_*` gauges and counters, and the
 * series with labels of their own: per Raft group (label `partition`, the meta group being
 * partition 0), throttles by DynamoDB's throttling reason, splits by reason (counted on the meta
 * leader that made them), and the Raft log's fsync durations.
 */

/** The node's numbers read under labels of their own, left out of the plain ones. */
type LabelledNumbers = 'groups' | 'raftLogSyncSeconds' | 'throttledReads' | 'throttledWrites' | 'splitsForSize' | 'splitsForHeat' | 'adminSplits';

export function storageNodeMetricSource(
  read: () => StorageNodeMetrics,
  nodeId: number,
  counters: readonly Exclude<keyof StorageNodeMetrics, LabelledNumbers>[],
): MetricSource {
  let reading: StorageNodeMetrics | undefined;
  return {
    prefix: 'shoal_node',
    labels: { node_id: String(nodeId) },
    counters,
    read: () => {
      reading = read();
      const { groups: _groups, raftLogSyncSeconds: _sync, throttledReads: _reads, throttledWrites: _writes, splitsForSize: _size, splitsForHeat: _heat, adminSplits: _admin, ...numbers } = reading;
      return numbers;
    },
    series: () => (reading === undefined ? [] : storageNodeSeries(reading)),
  };
}

export function storageNodeSeries(metrics: StorageNodeMetrics): Series[] {
  const perGroup = (name: string, type: 'gauge' | 'counter', help: string, value: (group: StorageNodeMetrics['groups'][number]) => number): Series => ({
    type,
    name,
    help,
    labelNames: ['partition'],
    samples: metrics.groups.map((group) => ({ labels: { partition: String(group.partitionId) }, value: value(group) })),
  });
  return [
    perGroup('shoal_node_raft_term', 'gauge', 'Raft term of the replica (partition 0: the meta group)', (g) => g.term),
    perGroup('shoal_node_raft_is_leader', 'gauge', '1 where the replica leads its group', (g) => g.leader),
    perGroup('shoal_node_raft_leader_changes_total', 'counter', 'Changes of the group leader the replica saw', (g) => g.leaderChanges),
    perGroup('shoal_node_raft_proposals_total', 'counter', 'Commands the replica proposed as leader', (g) => g.proposals),
    perGroup('shoal_node_raft_apply_lag', 'gauge', 'Committed entries the replica has not applied yet (commit index - applied index)', (g) => g.applyLag),
    perGroup('shoal_node_raft_voters', 'gauge', 'Voters of the group, as the replica knows its configuration', (g) => g.voters),
    perGroup('shoal_node_raft_learners', 'gauge', 'Learners of the group, as the replica knows its configuration', (g) => g.learners),
    {
      type: 'gauge',
      name: 'shoal_node_raft_follower_lag',
      help: 'Where the replica leads: entries a member\'s log is behind the leader\'s last index',
      labelNames: ['partition', 'follower'],
      samples: metrics.groups.flatMap((group) =>
        group.followerLag.map((lag) => ({ labels: { partition: String(group.partitionId), follower: String(lag.nodeId) }, value: lag.entries })),
      ),
    },
    {
      type: 'counter',
      name: 'shoal_node_throttled_requests_total',
      help: 'Requests refused by a partition\'s admission control, by DynamoDB throttling reason',
      labelNames: ['reason'],
      samples: [
        { labels: { reason: 'TableReadKeyRangeThroughputExceeded' }, value: metrics.throttledReads },
        { labels: { reason: 'TableWriteKeyRangeThroughputExceeded' }, value: metrics.throttledWrites },
      ],
    },
    {
      type: 'counter',
      name: 'shoal_node_partition_splits_total',
      help: 'Partitions split while this node led the meta group, by reason: size, heat (the placement driver) or admin (shoal admin split)',
      labelNames: ['reason'],
      samples: [
        { labels: { reason: 'size' }, value: metrics.splitsForSize },
        { labels: { reason: 'heat' }, value: metrics.splitsForHeat },
        { labels: { reason: 'admin' }, value: metrics.adminSplits },
      ],
    },
    {
      type: 'histogram',
      name: 'shoal_node_raft_log_fsync_duration_seconds',
      help: 'Time a Raft log batch takes to be written and fsynced',
      buckets: metrics.raftLogSyncSeconds.buckets,
      samples: [{ labels: {}, counts: metrics.raftLogSyncSeconds.counts, sum: metrics.raftLogSyncSeconds.sum }],
    },
  ];
}
