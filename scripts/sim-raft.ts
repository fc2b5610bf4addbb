/**
 * Replays one seeded Raft simulation with a readable event trace:
 *   npx node scripts/sim-raft.ts --seed 1234 --mix crash-loop --steps 3000 --verbose
 * Without --seed it runs --count seeds from --from and prints a line per failure;
 * --skip-linearizability checks only the invariants and liveness, for fast sweeps.
 */
import { parseArgs } from 'node:util';
import { formatHistory } from '@shoal/linearizability';
import type { HostBugs } from '../packages/raft/test/sim/host.ts';
import { MIX_NAMES, isMixName } from '../packages/raft/test/sim/mixes.ts';
import { runSimulation, type SimulationOptions } from '../packages/raft/test/sim/simulation.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    from: { type: 'string', default: '1' },
    count: { type: 'string', default: '100' },
    mix: { type: 'string', default: 'mixed' },
    steps: { type: 'string', default: '600' },
    reads: { type: 'string', default: 'readIndex' },
    bootstrap: { type: 'string', default: 'snapshot' },
    bug: { type: 'string', multiple: true, default: [] },
    verbose: { type: 'boolean', default: false },
    'skip-linearizability': { type: 'boolean', default: false },
  },
});

const mix = values.mix;
if (!isMixName(mix)) throw new Error(`unknown --mix ${mix}; one of ${MIX_NAMES.join(', ')}`);
const reads = values.reads;
if (reads !== 'readIndex' && reads !== 'lease') throw new Error(`--reads is readIndex or lease, not ${reads}`);
const bootstrap = values.bootstrap;
if (bootstrap !== 'snapshot' && bootstrap !== 'initial-conf') throw new Error(`--bootstrap is snapshot or initial-conf, not ${bootstrap}`);
const bugs: HostBugs = {};
for (const bug of values.bug) {
  if (bug === 'send-before-persist') bugs.sendBeforePersist = true;
  else if (bug === 'lose-unsynced-tail') bugs.loseUnsyncedTail = true;
  else if (bug === 'local-reads') bugs.localReads = true;
  else if (bug === 'drop-ticks-while-paused') bugs.dropTicksWhilePaused = true;
  else throw new Error(`unknown --bug ${bug}; one of send-before-persist, lose-unsynced-tail, local-reads, drop-ticks-while-paused`);
}
const steps = Number(values.steps);

function options(seed: number): SimulationOptions {
  return { seed, mix: mix as SimulationOptions['mix'], steps, reads: reads as SimulationOptions['reads'], bootstrap: bootstrap as SimulationOptions['bootstrap'], bugs, verbose: values.verbose, skipLinearizability: values['skip-linearizability'] };
}

if (values.seed !== undefined) {
  const result = runSimulation(options(Number(values.seed)));
  console.log(JSON.stringify(result.stats));
  for (const problem of result.problems) console.log(`PROBLEM ${problem}`);
  const failure = result.linearizability?.failure;
  if (failure) console.log(formatHistory(failure.operations));
  console.log(result.ok ? 'OK' : `FAILED: ${result.replay}`);
  process.exitCode = result.ok ? 0 : 1;
} else {
  const from = Number(values.from);
  const count = Number(values.count);
  const started = performance.now();
  let failures = 0;
  for (let seed = from; seed < from + count; seed++) {
    const result = runSimulation(options(seed));
    if (!result.ok) {
      failures++;
      console.log(`seed ${seed}: ${result.problems[0]}\n  ${result.replay}`);
    }
  }
  const elapsed = performance.now() - started;
  console.log(`${count} seeds of ${mix} (${steps} steps, ${reads}): ${failures} failed, ${(elapsed / count).toFixed(1)} ms/seed`);
  process.exitCode = failures === 0 ? 0 : 1;
}
