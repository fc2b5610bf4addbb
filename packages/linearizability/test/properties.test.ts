import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkKvHistory, seededRandom, simulateKvHistory } from '../src/index.ts';
import type { KvOperation } from '../src/index.ts';

/**
 * The definition, executed literally: some order of the completed operations plus any subset of
 * the indeterminate ones, respecting real time (a before b when a returned before b was called),
 * is a legal sequential run. Exponential; fine for a handful of operations.
 */
function linearizableByBruteForce(ops: KvOperation[]): boolean {
  type State = string | null | string[];
  const apply = (state: State, op: KvOperation): State | undefined => {
    const unknown = op.return === undefined;
    switch (op.type) {
      case 'put':
        return op.value;
      case 'get':
        return unknown || state === (op.output ?? null) ? state : undefined;
      case 'cas':
        if (state === op.expected) return unknown || op.ok ? op.value : undefined;
        return unknown || op.ok ? undefined : state;
      case 'append':
        return [...((state as string[] | null) ?? []), op.value];
      case 'read-list':
        return unknown || JSON.stringify((state as string[] | null) ?? []) === JSON.stringify(op.output) ? state : undefined;
    }
  };
  const placed = new Array<boolean>(ops.length).fill(false);
  const search = (state: State): boolean => {
    if (ops.every((op, i) => placed[i] || op.return === undefined)) return true;
    return ops.some((op, i) => {
      if (placed[i]) return false;
      const mustWait = ops.some((other, j) => !placed[j] && other.return !== undefined && other.return < op.call);
      if (mustWait) return false;
      const next = apply(state, op);
      if (next === undefined) return false;
      placed[i] = true;
      const found = search(next);
      placed[i] = false;
      return found;
    });
  };
  return search(null);
}

// One operation in five times out.
const timing = (key: string) =>
  fc
    .record({ process: fc.integer({ min: 1, max: 3 }), call: fc.integer({ min: 0, max: 12 }), length: fc.integer({ min: 0, max: 6 }), outcome: fc.integer({ min: 0, max: 4 }) })
    .map(({ process, call, length, outcome }) => (outcome === 0 ? { process, key, call } : { process, key, call, return: call + length }));
// Few distinct values, so histories often repeat a value: the checker must not assume uniqueness.
const value = fc.constantFrom('a', 'b', 'c');
const registerValue = fc.option(value, { nil: null });

const registerOperation: fc.Arbitrary<KvOperation> = fc.oneof(
  fc.tuple(timing('r'), value).map(([t, v]): KvOperation => ({ ...t, type: 'put', value: v })),
  fc.tuple(timing('r'), registerValue).map(([t, output]): KvOperation => (t.return === undefined ? { ...t, type: 'get' } : { ...t, type: 'get', output })),
  fc.tuple(timing('r'), registerValue, value, fc.boolean()).map(([t, expected, v, ok]): KvOperation =>
    t.return === undefined ? { ...t, type: 'cas', expected, value: v } : { ...t, type: 'cas', expected, value: v, ok },
  ),
);

const listOperation: fc.Arbitrary<KvOperation> = fc.oneof(
  fc.tuple(timing('l'), value).map(([t, v]): KvOperation => ({ ...t, type: 'append', value: v })),
  fc.tuple(timing('l'), fc.array(value, { maxLength: 3 })).map(([t, output]): KvOperation =>
    t.return === undefined ? { ...t, type: 'read-list' } : { ...t, type: 'read-list', output },
  ),
);

describe('agrees with a brute-force search on small histories', () => {
  it('registers (put, get, cas), with indeterminate operations and repeated values', () => {
    fc.assert(
      fc.property(fc.array(registerOperation, { minLength: 1, maxLength: 7 }), (history) => {
        expect(checkKvHistory(history).ok).toBe(linearizableByBruteForce(history));
      }),
      { numRuns: 1500, seed: 42 },
    );
  });

  it('lists (append, read-list), with indeterminate operations and repeated elements', () => {
    fc.assert(
      fc.property(fc.array(listOperation, { minLength: 1, maxLength: 7 }), (history) => {
        expect(checkKvHistory(history).ok).toBe(linearizableByBruteForce(history));
      }),
      { numRuns: 1500, seed: 43 },
    );
  });
});

/** A simulated history with some completed reads and cas outcomes perturbed (values stay unique). */
function perturbed(history: KvOperation[], random: () => number): KvOperation[] {
  const written = history.flatMap((op) => ('value' in op ? [op.value] : []));
  const pick = (): string => written[Math.floor(random() * written.length)] ?? 'unwritten';
  return history.map((op): KvOperation => {
    if (op.return === undefined || random() > 0.25) return op;
    switch (op.type) {
      case 'get':
        return { ...op, output: random() < 0.2 ? null : pick() };
      case 'cas':
        return random() < 0.5 ? { ...op, ok: !op.ok } : { ...op, expected: pick() };
      case 'read-list': {
        const output = [...op.output!];
        if (output.length > 1 && random() < 0.5) output.reverse();
        else if (random() < 0.5) output.pop();
        else output.push(pick());
        return { ...op, output };
      }
      default:
        return op;
    }
  });
}

describe('agrees with a brute-force search on perturbed simulated histories', () => {
  it('with unique values, which the checker takes shortcuts on', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const history = simulateKvHistory({ seed, operations: 8, keys: 1, clients: 3, indeterminateRate: 0.35, listKeyShare: 0.5 });
        const candidate = perturbed(history, seededRandom(seed));
        expect(checkKvHistory(candidate).ok).toBe(linearizableByBruteForce(candidate));
      }),
      { numRuns: 1500, seed: 48 },
    );
  });
});

describe('invariants', () => {
  it('every simulated history of a linearizable store passes', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 10 }), (seed, keys, clients) => {
        const history = simulateKvHistory({ seed, operations: 150, keys, clients, indeterminateRate: 0.15 });
        expect(checkKvHistory(history).ok).toBe(true);
      }),
      { numRuns: 150, seed: 44 },
    );
  });

  it('a simulated history with one read corrupted to an unwritten value fails, on that key', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 6 }), fc.nat(), (seed, keys, pick) => {
        const history = simulateKvHistory({ seed, operations: 150, keys, clients: 6, indeterminateRate: 0.15 });
        const reads = history.flatMap((op, index) => (op.return !== undefined && (op.type === 'get' || op.type === 'read-list') ? [index] : []));
        fc.pre(reads.length > 0);
        const index = reads[pick % reads.length];
        const corrupted = history.map((op, i): KvOperation => {
          if (i !== index) return op;
          return op.type === 'get' ? { ...op, output: 'unwritten' } : op.type === 'read-list' ? { ...op, output: [...op.output!, 'unwritten'] } : op;
        });
        const result = checkKvHistory(corrupted);
        expect(result.ok).toBe(false);
        expect(result.failure?.key).toBe(history[index].key);
      }),
      { numRuns: 150, seed: 47 },
    );
  });

  it('the verdict does not depend on the order operations are listed in', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(registerOperation, listOperation), { maxLength: 8 }), fc.integer(), (history, salt) => {
        const shuffled = history
          .map((op, i) => ({ op, rank: Math.imul(i + 1, salt | 1) >>> 0 }))
          .sort((a, b) => a.rank - b.rank)
          .map(({ op }) => op);
        expect(checkKvHistory(shuffled).ok).toBe(checkKvHistory(history).ok);
      }),
      { numRuns: 300, seed: 45 },
    );
  });

  it('a history of several keys passes exactly when each key passes alone', () => {
    fc.assert(
      fc.property(fc.array(registerOperation, { maxLength: 5 }), fc.array(listOperation, { maxLength: 5 }), (registers, lists) => {
        const together = checkKvHistory([...registers, ...lists]).ok;
        expect(together).toBe(checkKvHistory(registers).ok && checkKvHistory(lists).ok);
      }),
      { numRuns: 300, seed: 46 },
    );
  });
});
