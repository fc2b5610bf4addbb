import { describe, expect, it } from 'vitest';
import { checkKvHistory, simulateKvHistory } from '../src/index.ts';
import type { GetOperation, KvOperation, PutOperation, ReadListOperation } from '../src/index.ts';

const simulation = { operations: 4000, keys: 40, clients: 16, indeterminateRate: 0.03 };

function replaceAt(history: KvOperation[], index: number, replacement: KvOperation): KvOperation[] {
  return history.map((op, i) => (i === index ? replacement : op));
}

const completedPuts = (history: KvOperation[]): PutOperation[] =>
  history.filter((op): op is PutOperation => op.type === 'put' && op.return !== undefined);

/**
 * A completed get that saw something other than `v`, where `v` was put by a completed put that
 * returned before another completed put was called, which itself returned before the get was
 * called: the get cannot see `v` (values are unique in a simulation).
 */
function findStaleReadMutation(history: KvOperation[]): { index: number; staleValue: string } {
  const puts = completedPuts(history);
  for (const [index, op] of history.entries()) {
    if (op.type !== 'get' || op.return === undefined) continue;
    const overwritten = puts.find(
      (old) => old.key === op.key && old.value !== op.output && puts.some((newer) => newer.key === op.key && old.return! < newer.call && newer.return! < op.call),
    );
    if (overwritten !== undefined) return { index, staleValue: overwritten.value };
  }
  throw new Error('the simulation produced no candidate for a stale read');
}

describe('simulated histories of a linearizable store', () => {
  for (const seed of [1, 2, 3]) {
    it(`passes seed ${seed}: ${simulation.operations} operations over ${simulation.keys} keys`, () => {
      const history = simulateKvHistory({ seed, ...simulation });
      expect(history.some((op) => op.return === undefined)).toBe(true);
      expect(new Set(history.map((op) => op.type))).toEqual(new Set(['put', 'get', 'cas', 'append', 'read-list']));
      expect(checkKvHistory(history)).toEqual({ ok: true, timedOut: false, keysChecked: simulation.keys });
    });
  }

  it('is reproducible from its seed', () => {
    expect(simulateKvHistory({ seed: 7, operations: 300, keys: 4, clients: 5 })).toEqual(
      simulateKvHistory({ seed: 7, operations: 300, keys: 4, clients: 5 }),
    );
  });

  it('passes a hot single key with heavy concurrency', () => {
    const history = simulateKvHistory({ seed: 11, operations: 1000, keys: 1, clients: 8, listKeyShare: 0, indeterminateRate: 0.02 });
    expect(checkKvHistory(history).ok).toBe(true);
  });
});

describe('one corrupted read makes the simulated history fail', () => {
  const history = simulateKvHistory({ seed: 5, ...simulation });

  it('catches a read of a value never written', () => {
    const index = history.findLastIndex((op) => op.type === 'get' && op.return !== undefined && op.output !== null);
    const corrupted = replaceAt(history, index, { ...(history[index] as GetOperation), output: 'never-written' });
    const result = checkKvHistory(corrupted);
    expect(result.ok).toBe(false);
    expect(result.failure?.key).toBe(history[index].key);
    expect(result.failure?.explanation).toContain('get → "never-written"');
    // The key has far more operations than an explanation lists: the prefix is shortened.
    expect(result.failure?.explanation).toMatch(/… \d+ earlier operation\(s\) omitted/);
  });

  it('catches a stale read', () => {
    const { index, staleValue } = findStaleReadMutation(history);
    const corrupted = replaceAt(history, index, { ...(history[index] as GetOperation), output: staleValue });
    const result = checkKvHistory(corrupted);
    expect(result.ok).toBe(false);
    expect(result.failure?.key).toBe(history[index].key);
  });

  it('catches a read-list missing an append acknowledged before the read began', () => {
    const index = history.findIndex((read) => {
      if (read.type !== 'read-list' || read.return === undefined || read.output!.length === 0) return false;
      const first = history.find((op) => op.type === 'append' && op.value === read.output![0]);
      return first?.return !== undefined && first.return < read.call;
    });
    const read = history[index] as ReadListOperation;
    const result = checkKvHistory(replaceAt(history, index, { ...read, output: read.output!.slice(1) }));
    expect(result.ok).toBe(false);
    expect(result.failure?.key).toBe(read.key);
  });
});

describe('time limit', () => {
  it('reports a timeout, not a verdict, when the limit runs out', () => {
    const history = simulateKvHistory({ seed: 3, operations: 3000, keys: 1, clients: 8, listKeyShare: 0 });
    expect(checkKvHistory(history, { timeoutMs: 0 })).toEqual({ ok: false, timedOut: true, keysChecked: 0 });
  });
});
