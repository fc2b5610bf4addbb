import { describe, expect, it } from 'vitest';
import type { HostBugs } from './sim/host.ts';
import type { MixName } from './sim/mixes.ts';
import { runSimulation, type SimulationResult } from './sim/simulation.ts';
import type { ReadMode } from './sim/workload.ts';

/**
 * The harness can fail: hosts with a deliberate bug must be caught by the invariant checkers or
 * the linearizability checker for some seed in a small range. (A core that throws on a corrupted
 * log does not count: the checkers themselves must see the damage.)
 */
const SEEDS = 40;

function caughtRuns(mix: MixName, bugs: HostBugs, reads: ReadMode = 'readIndex', steps = 400): SimulationResult[] {
  const caught: SimulationResult[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const result = runSimulation({ seed, mix, steps, bugs, reads });
    if (result.violations.length > 0 || result.linearizability?.failure) caught.push(result);
  }
  return caught;
}

describe('raft simulation with a broken host', () => {
  it('catches a host that sends a Ready before persisting it and crashes in between', () => {
    const caught = caughtRuns('crash-loop', { sendBeforePersist: true });
    expect(caught.length).toBeGreaterThan(0);
    expect(caught[0].violations[0].invariant).toBe('persist before send');
    expect(caught[0].replay).toContain('--bug send-before-persist');
  });

  it('catches a disk that loses acknowledged but uncommitted entries on restart', () => {
    const caught = caughtRuns('crash-loop', { loseUnsyncedTail: true });
    expect(caught.length).toBeGreaterThan(0);
    expect(caught.flatMap((result) => result.violations.map((v) => v.invariant))).toContain('durability');
  });

  it('catches gets served from local state without ReadIndex', () => {
    const caught = caughtRuns('majority-partition', { localReads: true });
    expect(caught.length).toBeGreaterThan(0);
    expect(caught.every((result) => result.violations.length === 0)).toBe(true);
    expect(caught[0].linearizability?.failure?.explanation).toBeTruthy();
  });

  it('catches lease reads on a host that drops the ticks a process pause made it miss', () => {
    const caught = caughtRuns('process-pauses', { dropTicksWhilePaused: true }, 'lease', 500);
    expect(caught.length).toBeGreaterThan(0);
    expect(caught[0].linearizability?.failure?.explanation).toBeTruthy();
    expect(caught[0].replay).toContain('--reads lease --bug drop-ticks-while-paused');
  });

  it('a correct host passes the same seeds', () => {
    for (let seed = 1; seed <= 10; seed++) {
      expect(runSimulation({ seed, mix: 'crash-loop', steps: 400 }).problems).toEqual([]);
    }
  });
});
