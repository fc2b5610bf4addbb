import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runChaos } from '../src/index.ts';

/**
 * The checker on a real history with a real bug: with the test-only setting, "strong" reads are
 * served by any replica (eventually consistent reads recorded as strong, through a router that serves
 * no write, so no read-your-writes index holds them back). Followers apply committed
 * writes after the leader has acknowledged them, and a paused follower serves its old state when it
 * resumes, so reads go back in time and the verdict must say so.
 */
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('chaos run with eventual reads presented as strong', () => {
  it('reports a linearizability violation with its evidence', { timeout: 600_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-chaos-unsafe-'));
    dirs.push(dir);
    const { report } = await runChaos({
      seed: 4,
      durationMs: 20_000,
      faults: ['pause'],
      faultIntervalMs: 5_000,
      nodes: 3,
      // The reads recorded as strong go through the second router (see unsafeEventualAsStrong).
      routers: 2,
      partitions: 1,
      keys: 2,
      unsafeEventualAsStrong: true,
      dir,
    });
    const linearizable = report.checks.find((check) => check.name.startsWith('linearizable'))!;
    expect(linearizable.ok).toBe(false);
    expect(linearizable.summary).toMatch(/^VIOLATION on key kv\/[rcl]\d$/);
    expect(linearizable.details).toMatch(/it returned .*, but the (register holds|list is)/);
    expect(report.safe).toBe(false);
  });
});
