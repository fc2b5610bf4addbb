import { create } from '@bufbuild/protobuf';
import type { TableRecord } from '@shoal/model';
import { hashSliceRange } from '@shoal/model';
import { HotKeySchema, NodeState, ReplicaRole, StatusResponseSchema } from '@shoal/proto';
import { describe, expect, it } from 'vitest';
import { drainBlockers, isDrained } from '../src/commands/admin-drain.ts';
import { clusterStatus, formatStatus, textTable } from '../src/commands/admin-status.ts';

const halves = [hashSliceRange(5, 0, 2), hashSliceRange(5, 1, 2)];

const response = create(StatusResponseSchema, {
  mapVersion: 12n,
  metaLeaderId: 2n,
  nodes: [1n, 2n, 3n].map((id) => ({
    node: { id, address: `127.0.0.1:700${id}`, state: id === 3n ? NodeState.DOWN : NodeState.UP },
    replicas: 2,
    leaders: id === 1n ? 2 : 0,
    secondsSinceHeartbeat: id === 3n ? 12.345 : 0.25,
    reportedReplicas: (id === 3n ? [1n] : [1n, 2n]).map((partitionId) => ({
      partitionId,
      leader: id === 1n,
      role: ReplicaRole.VOTER,
      appliedIndex: id === 2n ? 40n : 42n,
    })),
  })),
  partitions: halves.map((range, index) => ({
    id: BigInt(index + 1),
    tableId: 5,
    startKey: range.start,
    endKey: range.end,
    epoch: 3n,
    replicas: [
      { nodeId: 1n, role: ReplicaRole.VOTER },
      { nodeId: 2n, role: ReplicaRole.VOTER },
      { nodeId: 3n, role: index === 0 ? ReplicaRole.VOTER : ReplicaRole.LEARNER },
    ],
  })),
});

const tables = [{ schema: { name: 'orders', tableId: 5, indexes: [{ name: 'byUser', kind: 'GSI', indexId: 6 }] } } as TableRecord];

describe('shoal admin status', () => {
  it('summarises nodes and partitions: table names, reported leader, applied index and lag', () => {
    const status = clusterStatus(response, tables);
    expect(status.metaLeader).toBe(2);
    expect(status.mapVersion).toBe(12);
    expect(status.nodes[2]).toEqual({ id: 3, address: '127.0.0.1:7003', state: 'down', replicas: 2, hosted: 1, leaders: 0, secondsSinceHeartbeat: 12.3 });
    expect(status.partitions).toEqual([
      { id: 1, table: 'orders', range: 'start..80000000', epoch: 3, leader: 1, replicas: ['1', '2', '3'], appliedIndex: 42, lag: 2 },
      { id: 2, table: 'orders', range: '80000000..end', epoch: 3, leader: 1, replicas: ['1', '2', '3(learner)'], appliedIndex: 42, lag: 2 },
    ]);
  });

  it('prints aligned tables', () => {
    expect(formatStatus(clusterStatus(response, tables))).toBe(
      [
        'meta leader: node 2   map version: 12',
        '',
        'NODE  ADDRESS         STATE  REPLICAS  HOSTED  LEADERS  HEARTBEAT',
        '   1  127.0.0.1:7001  up            2       2        2  0.3s ago',
        '   2  127.0.0.1:7002  up            2       2        0  0.3s ago',
        '   3  127.0.0.1:7003  down          2       1        0  12.3s ago',
        '',
        'PARTITION  TABLE   RANGE            EPOCH  LEADER  REPLICAS        APPLIED  LAG',
        '        1  orders  start..80000000      3       1  1,2,3                42    2',
        '        2  orders  80000000..end        3       1  1,2,3(learner)       42    2',
        '',
      ].join('\n'),
    );
  });

  it('labels the partitions of a GSI table/index', () => {
    const gsi = create(StatusResponseSchema, { partitions: [{ id: 4n, tableId: 6, startKey: hashSliceRange(6, 0, 1).start, endKey: hashSliceRange(6, 0, 1).end, epoch: 1n }] });
    expect(clusterStatus(gsi, tables).partitions.map((p) => p.table)).toEqual(['orders/byUser']);
  });

  it('marks what no replica has reported yet, and names a table it does not know by its id', () => {
    const bare = create(StatusResponseSchema, {
      partitions: [{ id: 9n, tableId: 77, startKey: halves[0].start, endKey: new Uint8Array(), epoch: 1n, replicas: [], leaderHint: 4n }],
    });
    expect(clusterStatus(bare, []).partitions).toEqual([
      { id: 9, table: '#77', range: 'start..∞', epoch: 1, leader: 4, replicas: [], appliedIndex: undefined, lag: undefined },
    ]);
    const unknownLeader = create(StatusResponseSchema, { partitions: [{ id: 9n, tableId: 77, epoch: 1n }] });
    expect(formatStatus(clusterStatus(unknownLeader, []))).toContain('        9  #77    -∞..∞      1       -                  -    -\n');
  });

  it('takes the leader claim of the latest term: a dead leader\'s last report may still claim it', () => {
    const claims = create(StatusResponseSchema, {
      nodes: [
        { node: { id: 1n, state: NodeState.DOWN }, reportedReplicas: [{ partitionId: 4n, leader: true, term: 2n, appliedIndex: 10n }] },
        { node: { id: 2n, state: NodeState.UP }, reportedReplicas: [{ partitionId: 4n, leader: true, term: 3n, appliedIndex: 12n }] },
        { node: { id: 3n, state: NodeState.UP }, reportedReplicas: [{ partitionId: 4n, leader: false, term: 3n, appliedIndex: 12n }] },
      ],
      partitions: [{ id: 4n, tableId: 5, epoch: 1n, leaderHint: 1n }],
    });
    expect(clusterStatus(claims, tables).partitions[0]).toMatchObject({ leader: 2, appliedIndex: 12, lag: 2 });
  });

  it('lists the hot items the meta leader reports, after the partitions', () => {
    const hot = { ...response, hotKeys: [create(HotKeySchema, { partitionId: 2n, key: Uint8Array.from([0, 0, 0, 5, 0xab]), share: 0.912, utilization: 1.004, seconds: 12.4 })] };
    const status = clusterStatus(hot, tables);
    expect(status.hotKeys).toEqual([{ partition: 2, table: 'orders', key: '00000005ab', share: 91, utilization: 100, seconds: 12 }]);
    expect(formatStatus(status)).toMatch(
      /\n\nhot items \(one key carries most of the partition's load: no split relieves it\)\nPARTITION  TABLE   KEY         SHARE  LOAD  FOR\n        2  orders  00000005ab  91%    100%  12s\n$/,
    );
    expect(clusterStatus(response, tables).hotKeys).toEqual([]);
  });

  it('right-aligns the columns of numbers (and unknowns) only', () => {
    expect(textTable(['A', 'B', 'C'], [[1, 'x', '-'], ['-', 'yy', '-'], [100, 'z', 'w']])).toBe('  A  B   C\n  1  x   -\n  -  yy  -\n100  z   w');
  });
});

describe('shoal admin drain', () => {
  const row = (id: number, state: string) => ({ id, address: `127.0.0.1:700${id}`, state, replicas: 1, hosted: 1, leaders: 0, secondsSinceHeartbeat: 0 });
  const partition = (id: number, replicas: string[]) => ({ id, table: 't', range: '-∞..∞', epoch: 1, leader: undefined, replicas, appliedIndex: undefined, lag: undefined });

  it('names the partitions of the drained node that no other up node can take', () => {
    const status = {
      metaLeader: 1,
      mapVersion: 1,
      hotKeys: [],
      nodes: [row(1, 'up'), row(2, 'up'), row(3, 'draining'), row(4, 'down')],
      partitions: [partition(1, ['1', '2', '3']), partition(2, ['1', '3', '4']), partition(3, ['1', '2(learner)', '3']), partition(4, ['1', '2', '4'])],
    };
    // Partition 2 can move to node 2; the down node 4 takes nothing; a learner holds its node.
    expect(drainBlockers(status, 3)).toEqual([1, 3]);
    expect(drainBlockers({ ...status, nodes: [...status.nodes, row(5, 'up')] }, 3)).toEqual([]);
  });

  it('counts a node drained once the map places nothing there and it hosts nothing (a down node: its last report is stale)', () => {
    expect(isDrained({ ...row(4, 'draining'), replicas: 0, hosted: 0 })).toBe(true);
    expect(isDrained({ ...row(4, 'draining'), replicas: 0, hosted: 1 })).toBe(false);
    expect(isDrained({ ...row(4, 'draining'), replicas: 1, hosted: 0 })).toBe(false);
    expect(isDrained({ ...row(4, 'down'), replicas: 0, hosted: 2 })).toBe(true);
  });
});
