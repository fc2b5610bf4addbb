import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProcessMetrics, flatten } from '../src/ops/metrics.ts';
import type { NumericTree, Series } from '../src/ops/metrics.ts';
import { startOpsServer } from '../src/ops/ops-server.ts';
import type { OpsServer } from '../src/ops/ops-server.ts';

describe('flatten', () => {
  it('names every finite number by its snake_case path and drops the rest', () => {
    const tree: NumericTree = {
      replicas: 3,
      raftLog: { appendedEntriesTotal: 10, bytesWritten: 2048 },
      missing: undefined,
      notANumber: Number.NaN,
    };
    expect([...flatten(tree)]).toEqual([
      ['replicas', 3],
      ['raft_log_appended_entries_total', 10],
      ['raft_log_bytes_written', 2048],
    ]);
  });
});

describe('ops server', () => {
  let ready = false;
  let failed = false;
  let numbers = { replicas: 2, writesTotal: 5, rounds: 0 };
  let ops: OpsServer;
  const url = (path: string): string => `http://127.0.0.1:${ops.port}${path}`;

  beforeAll(async () => {
    ops = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      readiness: () => (ready ? { ready } : { ready, waitingFor: 'a leader of partition 3' }),
      health: () => (failed ? { healthy: false, problem: 'the Raft host stopped: restart the node' } : { healthy: true }),
      metrics: createProcessMetrics([{ prefix: 'shoal_node', read: () => numbers, labels: { node_id: '7' }, counters: ['rounds'] }]),
    });
  });
  afterAll(async () => {
    await ops.close();
  });

  it('answers /healthz until the process needs a restart, and /readyz only once ready', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    failed = true;
    const unhealthy = await fetch(url('/healthz'));
    expect(unhealthy.status).toBe(503);
    expect(await unhealthy.text()).toBe('unhealthy: the Raft host stopped: restart the node\n');
    failed = false;
    const waiting = await fetch(url('/readyz'));
    expect(waiting.status).toBe(503);
    expect(await waiting.text()).toBe('not ready: waiting for a leader of partition 3\n');
    ready = true;
    const response = await fetch(url('/readyz'));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('ready\n');
  });

  it('serves the component numbers read at scrape time, counters for *Total names and those listed', async () => {
    const first = await (await fetch(url('/metrics'))).text();
    expect(first).toContain('# TYPE shoal_node_replicas gauge');
    expect(first).toContain('shoal_node_replicas{node_id="7"} 2');
    expect(first).toContain('# TYPE shoal_node_writes_total counter');
    expect(first).toContain('shoal_node_writes_total{node_id="7"} 5');
    expect(first).toContain('# TYPE shoal_node_rounds_total counter');
    expect(first).toContain('shoal_node_rounds_total{node_id="7"} 0');
    // Node.js's own metrics come along.
    expect(first).toContain('process_cpu_user_seconds_total');

    numbers = { replicas: 1, writesTotal: 9, rounds: 3 };
    const second = await (await fetch(url('/metrics'))).text();
    expect(second).toContain('shoal_node_replicas{node_id="7"} 1');
    expect(second).toContain('shoal_node_writes_total{node_id="7"} 9');
    expect(second).toContain('shoal_node_rounds_total{node_id="7"} 3');
  });

  it('answers unknown paths 404 and other methods 405', async () => {
    expect((await fetch(url('/nope'))).status).toBe(404);
    expect((await fetch(url('/metrics'), { method: 'POST' })).status).toBe(405);
  });
});

describe('labelled series', () => {
  let groups = [
    { partition: '0', term: 3 },
    { partition: '7', term: 5 },
  ];
  let throttled = 2;
  let fsync = { counts: [1, 0, 2], sum: 0.0125 };
  const metrics = createProcessMetrics([
    {
      prefix: 'shoal_node',
      read: () => ({ replicas: groups.length }),
      labels: { node_id: '2' },
      series: (): Series[] => [
        { type: 'gauge', name: 'shoal_node_raft_term', help: 'term', labelNames: ['partition'], samples: groups.map((g) => ({ labels: { partition: g.partition }, value: g.term })) },
        { type: 'counter', name: 'shoal_node_throttled_requests_total', help: 'throttled', labelNames: ['reason'], samples: [{ labels: { reason: 'Read"Key\\Range' }, value: throttled }] },
        { type: 'histogram', name: 'shoal_node_fsync_seconds', help: 'fsync', buckets: [0.001, 0.01], samples: [{ labels: {}, counts: fsync.counts, sum: fsync.sum }] },
      ],
    },
  ]);

  it('exports gauges and counters with the source labels and their own, a partition gone disappearing', async () => {
    const first = await metrics.scrape();
    expect(first).toContain('shoal_node_raft_term{node_id="2",partition="0"} 3');
    expect(first).toContain('shoal_node_raft_term{node_id="2",partition="7"} 5');
    expect(first).toContain('# TYPE shoal_node_throttled_requests_total counter');
    expect(first).toContain('shoal_node_throttled_requests_total{node_id="2",reason="Read\\"Key\\\\Range"} 2');

    groups = [{ partition: '7', term: 6 }];
    throttled = 4;
    const second = await metrics.scrape();
    expect(second).not.toContain('partition="0"');
    expect(second).toContain('shoal_node_raft_term{node_id="2",partition="7"} 6');
    expect(second).toContain('shoal_node_throttled_requests_total{node_id="2",reason="Read\\"Key\\\\Range"} 4');
  });

  it('exports a histogram counted by the component as cumulative buckets, sum and count', async () => {
    fsync = { counts: [1, 0, 2], sum: 0.0125 };
    const text = await metrics.scrape();
    expect(text).toContain('# TYPE shoal_node_fsync_seconds histogram');
    const lines = text.split('\n').filter((line) => line.startsWith('shoal_node_fsync_seconds'));
    expect(lines).toEqual([
      'shoal_node_fsync_seconds_bucket{node_id="2",le="0.001"} 1',
      'shoal_node_fsync_seconds_bucket{node_id="2",le="0.01"} 1',
      'shoal_node_fsync_seconds_bucket{node_id="2",le="+Inf"} 3',
      'shoal_node_fsync_seconds_sum{node_id="2"} 0.0125',
      'shoal_node_fsync_seconds_count{node_id="2"} 3',
    ]);
  });
});
