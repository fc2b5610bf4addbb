import { describe, expect, it } from 'vitest';
import { computeFigures } from '../src/figures.ts';
import { formatSummary, renderHtml } from '../src/report.ts';
import type { ChaosReport } from '../src/report.ts';
import type { RequestRecord } from '../src/workload.ts';
import type { FaultRecord } from '../src/faults.ts';

function request(kind: RequestRecord['kind'], start: number, completion: RequestRecord['completion'], error?: string): RequestRecord {
  return { kind, client: 0, start, end: start + 50, completion, keys: ['kv/r0'], ...(error === undefined ? {} : { error }) };
}

function sampleReport(): ChaosReport {
  const requests = [
    request('put', 100, 'ok'),
    request('get', 1_200, 'ok'),
    request('put', 3_100, 'indeterminate', 'no answer within 10000 ms'),
    request('cas', 3_500, 'failed', 'ConditionalCheckFailedException'),
    request('put', 4_100, 'ok'),
  ];
  const faults: FaultRecord[] = [{ kind: 'kill-leader', target: 'node 2', partition: 3, detail: 'leader of partition 3', start: 3_000, healed: 3_800, ready: 4_000, newLeaderAt: 3_600 }];
  const leaderless = [{ partition: 3, start: 3_000, end: 3_900, replicas: [1, 2, 3] }];
  return {
    seed: 5,
    startedAt: '2026-11-26T00:00:00.000Z',
    dir: '/tmp/x',
    cluster: { nodes: 5, routers: 2, partitions: 4, partitionIds: [1, 2, 3, 4], settled: true },
    workload: { seed: 5, clients: 2, keys: 2, requestTimeoutMs: 10_000, unsafeEventualAsStrong: false, durationMs: 5_000, faultKinds: ['kill-leader'] },
    workloadMs: 5_000,
    plannedFaults: 1,
    faults,
    leaderless,
    figures: computeFigures(requests, faults, leaderless, 5_000),
    checks: [
      { name: 'linearizable', kind: 'safety', ok: true, summary: 'fine' },
      { name: 'no partition leaderless for more than 15 s', kind: 'liveness', ok: false, summary: 'too long <b>', details: 'partition 3: <0..20 s>' },
    ],
    safe: true,
    ok: false,
  };
}

describe('figures', () => {
  it('count outcomes (a conditional check failure is an answer), split throughput by phase and time the fault', () => {
    const { figures } = sampleReport();
    expect(figures.total).toEqual({ ok: 4, failed: 0, indeterminate: 1 });
    expect(figures.phases.map((phase) => phase.name)).toEqual(['before', 'during', 'after']);
    expect(figures.phases[0]).toMatchObject({ startMs: 0, endMs: 3_000, okPerSecond: 1 });
    expect(figures.timeToNewLeader).toEqual({ count: 1, p50Ms: 600, maxMs: 600 });
    expect(figures.recovery).toEqual({ count: 1, p50Ms: 1_000, maxMs: 1_000 });
    // The put of 3.1 s stayed unanswered; the key answered again with the refused cas of 3.5 s.
    expect(figures.unavailability).toEqual({ count: 1, p50Ms: 450, maxMs: 450 });
    expect(figures.longestLeaderlessMs).toBe(900);
    expect(figures.timeline.map((bin) => bin.ok + bin.failed + bin.indeterminate)).toEqual([1, 1, 0, 2, 1]);
  });

  it('have no "after" phase when the last target was ready only after the workload', () => {
    const faults = [{ kind: 'kill' as const, target: 'node 1', start: 1_000, healed: 2_000, ready: 9_000 }];
    const figures = computeFigures([request('put', 100, 'ok')], faults, [], 5_000);
    expect(figures.phases.map((phase) => [phase.name, phase.startMs, phase.endMs])).toEqual([
      ['before', 0, 1_000],
      ['during', 1_000, 5_000],
    ]);
  });
});

describe('reports', () => {
  it('summarize the verdict, the faults and the figures on the terminal', () => {
    const summary = formatSummary(sampleReport());
    expect(summary).toContain('operations: 4 ok, 0 failed, 1 indeterminate');
    expect(summary).toContain('kill-leader node 2 (leader of partition 3)');
    const split: FaultRecord = { kind: 'kill-during-split', target: 'node 4', partition: 1, detail: 'replica of partition 1, killed while it splits at k', start: 4_200, healed: 4_600, outcome: 'split into 1 and 9' };
    const report = sampleReport();
    expect(formatSummary({ ...report, faults: [...report.faults, split] })).toContain(
      'kill-during-split node 4 (replica of partition 1, killed while it splits at k): healed 4.6s, ready -, split into 1 and 9',
    );
    expect(summary).toContain('FAIL  liveness no partition leaderless for more than 15 s');
    expect(summary).toContain('VERDICT: safe, but a liveness bound was exceeded');
  });

  it('render a self-contained HTML page with an inline SVG timeline and escaped text', () => {
    const html = renderHtml(sampleReport());
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(html).toContain('kill-leader node 2 3.0–4.0 s');
    expect(html).toContain('too long &lt;b&gt;');
    expect(html).toContain('partition 3: &lt;0..20 s&gt;');
    expect(html).not.toMatch(/<(script|link|img|iframe)\b|src=|href=/);
    expect(html).toContain('npm run chaos -- --seed 5 --duration 5s --faults kill-leader');
  });
});
