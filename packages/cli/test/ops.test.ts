import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProcessMetrics, flatten } from '../src/ops/metrics.ts';
import type { NumericTree } from '../src/ops/metrics.ts';
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
  let numbers = { replicas: 2, writesTotal: 5, rounds: 0 };
  let ops: OpsServer;
  const url = (path: string): string => `http://127.0.0.1:${ops.port}${path}`;

  beforeAll(async () => {
    ops = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      isReady: () => ready,
      metrics: createProcessMetrics([{ prefix: 'shoal_node', read: () => numbers, labels: { node_id: '7' }, counters: ['rounds'] }]),
    });
  });
  afterAll(async () => {
    await ops.close();
  });

  it('answers /healthz always and /readyz only once ready', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    expect((await fetch(url('/readyz'))).status).toBe(503);
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
