/**
 * How long the linearizability checker takes on simulated histories, linearizable and corrupted.
 * Run: npx node scripts/bench-linearizability.ts
 */
import os from 'node:os';
import { checkKvHistory, simulateKvHistory } from '@shoal/linearizability';
import type { KvOperation, SimulationOptions } from '@shoal/linearizability';

interface Scenario {
  name: string;
  simulation: SimulationOptions;
}

const scenarios: Scenario[] = [
  { name: '5k ops, 50 keys, 16 clients, 2% timeouts', simulation: { seed: 1, operations: 5_000, keys: 50, clients: 16 } },
  { name: '20k ops, 100 keys, 32 clients, 5% timeouts', simulation: { seed: 2, operations: 20_000, keys: 100, clients: 32, indeterminateRate: 0.05 } },
  { name: '100k ops, 1000 keys, 64 clients, 2% timeouts', simulation: { seed: 3, operations: 100_000, keys: 1_000, clients: 64 } },
  { name: '5k ops, 1 register, 8 clients, 1% timeouts', simulation: { seed: 4, operations: 5_000, keys: 1, clients: 8, listKeyShare: 0, indeterminateRate: 0.01 } },
  { name: '5k ops, 1 list, 8 clients, 5% timeouts', simulation: { seed: 5, operations: 5_000, keys: 1, clients: 8, listKeyShare: 1, indeterminateRate: 0.05 } },
];

/** The same history with its last completed read corrupted: the whole key is searched before failing. */
function corruptLastRead(history: KvOperation[]): KvOperation[] {
  const index = history.findLastIndex((op) => op.return !== undefined && (op.type === 'get' || op.type === 'read-list'));
  return history.map((op, i) => {
    if (i !== index) return op;
    if (op.type === 'get') return { ...op, output: 'never-written' };
    if (op.type === 'read-list') return { ...op, output: [...op.output!, 'never-appended'] };
    return op;
  });
}

function time(history: KvOperation[]): { ms: number; verdict: string } {
  const start = performance.now();
  const result = checkKvHistory(history, { timeoutMs: 120_000 });
  const verdict = result.timedOut ? 'timeout' : result.ok ? 'linearizable' : `violation (${result.failure!.key})`;
  return { ms: performance.now() - start, verdict };
}

console.log(`node ${process.version}, ${os.cpus().length} cpus, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const rows = scenarios.map(({ name, simulation }) => {
  const history = simulateKvHistory(simulation);
  const clean = time(history);
  const corrupted = time(corruptLastRead(history));
  return { scenario: name, 'check ms': Math.round(clean.ms), verdict: clean.verdict, 'corrupted ms': Math.round(corrupted.ms), 'corrupted verdict': corrupted.verdict };
});
console.table(rows);
