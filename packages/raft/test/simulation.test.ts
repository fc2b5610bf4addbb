import { describe, expect, it } from 'vitest';
import { MIX_NAMES, type MixName } from './sim/mixes.ts';
import { runSimulation, type SimulationOptions, type SimulationResult } from './sim/simulation.ts';
import type { ReadMode } from './sim/workload.ts';

/**
 * The seeded simulation of the Raft core: every mix runs SEEDS_PER_MIX seeds with ReadIndex reads
 * (8 x 140), and the mixes that threaten leases run LEASE_SEEDS more with lease reads (5 x 50). Each run checks
 * the safety invariants continuously, liveness after healing, and linearizability of the history.
 * A failure prints the command that replays it with a trace.
 */
const STEPS = 500;
const SEEDS_PER_MIX = 140;
/**
 * leader-isolation includes transfers followed by the old leader going deaf (stale lease reads
 * before the core's fix); process-pauses freezes leaders, the classic threat to leases.
 */
const LEASE_MIXES: MixName[] = ['leader-isolation', 'process-pauses', 'majority-partition', 'crash-loop', 'mixed'];
const LEASE_SEEDS = 50;

interface Totals {
  runs: number;
  elections: number;
  crashes: number;
  confChanges: number;
  completed: number;
  indeterminate: number;
  dropped: number;
  retried: number;
  snapshotsSent: number;
}

function runSeeds(mix: MixName, reads: ReadMode, seeds: number): { failures: string[]; totals: Totals } {
  const failures: string[] = [];
  const totals: Totals = { runs: 0, elections: 0, crashes: 0, confChanges: 0, completed: 0, indeterminate: 0, dropped: 0, retried: 0, snapshotsSent: 0 };
  for (let seed = 1; seed <= seeds; seed++) {
    const options: SimulationOptions = { seed, mix, steps: STEPS, reads };
    const result: SimulationResult = runSimulation(options);
    totals.runs++;
    totals.elections += result.stats.leaderElections;
    totals.crashes += result.stats.crashes;
    totals.confChanges += result.stats.confChangesApplied;
    totals.completed += result.stats.completed;
    totals.indeterminate += result.stats.indeterminate;
    totals.dropped += result.stats.messagesDropped;
    totals.retried += result.stats.retried;
    totals.snapshotsSent += result.stats.snapshotsSent;
    if (!result.ok) failures.push(`seed ${seed}: ${result.problems.join(' | ')}\n    replay: ${result.replay}`);
  }
  return { failures, totals };
}

describe('raft simulation', () => {
  for (const mix of MIX_NAMES) {
    it(`${mix}: ${SEEDS_PER_MIX} seeds stay safe, recover and are linearizable`, () => {
      const { failures, totals } = runSeeds(mix, 'readIndex', SEEDS_PER_MIX);
      expect(failures).toEqual([]);
      // The run really exercised the system: clients were answered, and the mix's faults happened.
      expect(totals.completed).toBeGreaterThan(SEEDS_PER_MIX * 50);
      expect(totals.elections).toBeGreaterThanOrEqual(SEEDS_PER_MIX);
      if (mix === 'crash-loop' || mix === 'mixed') expect(totals.crashes).toBeGreaterThan(SEEDS_PER_MIX);
      if (mix === 'membership-churn' || mix === 'mixed') expect(totals.confChanges).toBeGreaterThan(SEEDS_PER_MIX);
      if (mix !== 'calm') expect(totals.indeterminate + totals.retried).toBeGreaterThan(0);
      if (mix === 'crash-loop' || mix === 'membership-churn') expect(totals.snapshotsSent).toBeGreaterThan(0);
      if (mix === 'crash-loop' || mix === 'mixed') expect(totals.retried).toBeGreaterThan(0);
    }, 240_000);
  }

  for (const mix of LEASE_MIXES) {
    it(`${mix} with lease reads: ${LEASE_SEEDS} seeds stay safe, recover and are linearizable`, () => {
      const { failures, totals } = runSeeds(mix, 'lease', LEASE_SEEDS);
      expect(failures).toEqual([]);
      expect(totals.completed).toBeGreaterThan(LEASE_SEEDS * 50);
    }, 240_000);
  }

  it('replays a seed exactly', () => {
    const options: SimulationOptions = { seed: 77, mix: 'mixed', steps: 300 };
    const first = runSimulation(options);
    const second = runSimulation(options);
    expect(second.stats).toEqual(first.stats);
    expect(second.history).toEqual(first.history);
    expect(first.replay).toBe('npx node scripts/sim-raft.ts --seed 77 --mix mixed --steps 300 --verbose');
  });

  it('writes a readable trace when verbose', () => {
    const lines: string[] = [];
    const result = runSimulation({ seed: 5, mix: 'crash-loop', steps: 150, verbose: true, log: (line) => lines.push(line) });
    expect(result.ok).toBe(true);
    const trace = lines.join('\n');
    expect(trace).toMatch(/boot seed=5 mix=crash-loop/);
    expect(trace).toMatch(/node \d became leader of term \d+/);
    expect(trace).toMatch(/node \d CRASH/);
    expect(trace).toMatch(/client \d <- node \d: /);
    expect(trace).toMatch(/---- live: leader \d term \d+ committed on every member/);
  });
});
