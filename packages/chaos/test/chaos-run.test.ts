import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runChaos } from '../src/index.ts';

/**
 * A real chaos run: 5 `shoal node` and 2 `shoal router` processes, 60 s of recorded workload while
 * storage nodes and partition leaders are SIGKILLed and restarted, then the verdict. Only safety is
 * asserted: how fast the cluster recovers (the liveness checks) depends on the machine's load.
 */
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('chaos run with node and leader kills', () => {
  it('ends with a clean safety verdict, every fault injected and healed, and both reports written', { timeout: 600_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-chaos-test-'));
    dirs.push(dir);
    const { report, jsonPath, htmlPath } = await runChaos({
      seed: 7,
      durationMs: 60_000,
      faults: ['kill', 'kill-leader'],
      faultIntervalMs: 8_000,
      dir,
    });
    const failedSafety = report.checks.filter((check) => check.kind === 'safety' && !check.ok);
    expect(failedSafety.map((check) => `${check.name}: ${check.summary}\n${check.details ?? ''}`)).toEqual([]);
    expect(report.safe).toBe(true);
    // Seed 7 plans a kill at 12 s, a leader kill at 21 s, then one of each again (faults run one at a
    // time, so on a slow machine the last ones may not start before the end): both kinds ran, every
    // target came back.
    const injected = report.faults.filter((fault) => fault.target !== '-');
    expect(report.faults.length, JSON.stringify(report.faults)).toBeGreaterThanOrEqual(2);
    expect(new Set(injected.map((fault) => fault.kind)), JSON.stringify(report.faults)).toEqual(new Set(['kill', 'kill-leader']));
    for (const fault of injected) expect(fault.healed, `${fault.kind} ${fault.target}: ${fault.note ?? ''}`).toBeDefined();
    // Operations of every kind were acknowledged, and the history was not trivial.
    for (const kind of ['put', 'get', 'get-eventual', 'cas', 'add', 'append', 'read-list', 'batch-write', 'transact', 'transact-read', 'transact-cross', 'transact-read-cross'] as const) {
      expect(report.figures.byKind[kind]?.ok ?? 0, kind).toBeGreaterThan(0);
    }
    expect(JSON.parse(await readFile(jsonPath, 'utf8'))).toMatchObject({ seed: 7, safe: true });
    const html = await readFile(htmlPath, 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<(script|link|img)\b/);
  });
});
