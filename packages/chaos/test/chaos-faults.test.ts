import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planFaults, runChaos } from '../src/index.ts';
import type { FaultKind } from '../src/index.ts';

/**
 * One real chaos run over the faults beyond plain kills and pauses: kills during a split, a
 * leadership transfer and a replica move, a network partition, a slow and a full disk, on a light
 * cluster (4 nodes, 1 router). Seed 12 plans, from 18 s on: kill-during-split, partition (a leader's
 * traffic lost one way), kill-during-transfer, kill-during-move, disk-slow, disk-full, then more. A
 * fault that takes a node down waits for the previous target to be ready again (at most 20 s), and a
 * restart takes 20 s on a machine loaded 15 deep: there the first four still fit in the 90 s, the
 * rest when the machine is quieter. Only safety is asserted: how fast the cluster recovers depends on
 * the load.
 */
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const KINDS: FaultKind[] = ['partition', 'kill-during-split', 'kill-during-transfer', 'kill-during-move', 'disk-slow', 'disk-full'];
const PLAN = { seed: 12, durationMs: 90_000, faultIntervalMs: 6_000 };

describe('chaos run with kills during a move, a transfer and a split, disk faults and a partition', () => {
  it('ends with a clean safety verdict, the faults injected in plan order and healed', { timeout: 600_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-chaos-faults-'));
    dirs.push(dir);
    const { report } = await runChaos({ ...PLAN, faults: KINDS, nodes: 4, routers: 1, partitions: 2, clients: 6, dir });
    const failedSafety = report.checks.filter((check) => check.kind === 'safety' && !check.ok);
    expect(failedSafety.map((check) => `${check.name}: ${check.summary}\n${check.details ?? ''}`)).toEqual([]);
    expect(report.safe).toBe(true);
    const faults = JSON.stringify(report.faults, null, 1);
    const planned = planFaults({ seed: PLAN.seed, kinds: KINDS, durationMs: PLAN.durationMs, intervalMs: PLAN.faultIntervalMs }).map((fault) => fault.kind);
    expect(planned.slice(0, 6)).toEqual(['kill-during-split', 'partition', 'kill-during-transfer', 'kill-during-move', 'disk-slow', 'disk-full']);
    expect(report.faults.map((fault) => fault.kind), faults).toEqual(planned.slice(0, report.faults.length));
    expect(report.faults.length, faults).toBeGreaterThanOrEqual(4);
    // None of the first four skipped (each found its partition, leader or move), all healed.
    for (const fault of report.faults.slice(0, 4)) expect(fault.target, faults).not.toBe('-');
    for (const fault of report.faults.filter((fault) => fault.target !== '-')) expect(fault.healed, `${fault.kind} ${fault.target}: ${fault.note ?? ''}`).toBeDefined();
    // The split asked for came to something, whatever the kill did to it.
    expect(report.faults.find((fault) => fault.kind === 'kill-during-split')?.outcome, faults).toMatch(/^split (into \d+ and \d+|failed: .+)$/);
    expect(report.checks.map((check) => check.name)).toContain('no partition leaderless for more than 15 s once a majority of its replicas is back');
    for (const kind of ['put', 'get', 'cas', 'append', 'transact'] as const) expect(report.figures.byKind[kind]?.ok ?? 0, kind).toBeGreaterThan(0);
  });
});
