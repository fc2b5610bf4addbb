/**
 * Random fault schedules (partitions, message loss, restarts, compaction, transfers) over the
 * in-test cluster (fast-check, fixed seed): after every step the
 * replicas agree — applied sequences are prefixes of one another, at most one leader per term,
 * and committed log entries are identical wherever present.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ProposalDroppedError } from '../src/errors.ts';
import { Cluster } from './support/cluster.ts';

type Action =
  | { kind: 'propose'; node: number }
  | { kind: 'tick'; times: number }
  | { kind: 'isolate'; node: number }
  | { kind: 'heal' }
  | { kind: 'compact'; node: number }
  | { kind: 'transfer'; to: number }
  | { kind: 'restart'; node: number }
  | { kind: 'read'; node: number }
  | { kind: 'loss'; rate: number };

const action = (size: number): fc.Arbitrary<Action> => {
  const node = fc.integer({ min: 1, max: size });
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('propose' as const), node }) },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('tick' as const), times: fc.integer({ min: 1, max: 25 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('isolate' as const), node }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('heal' as const) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('transfer' as const), to: node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('read' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('loss' as const), rate: fc.constantFrom(0, 0.1, 0.3) }) },
  );
};

function isPrefix(a: string[], b: string[]): boolean {
  return a.every((x, i) => b[i] === x);
}

function run(size: number, actions: Action[]): void {
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const c = new Cluster(ids);
  const leaders = new Map<number, number>();
  let n = 0;
  const swallowDrop = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  };
  for (const a of actions) {
    switch (a.kind) {
      case 'propose':
        swallowDrop(() => c.propose(a.node, `p${n++}`));
        break;
      case 'tick':
        c.tick(a.times);
        break;
      case 'isolate':
        c.isolate(a.node);
        break;
      case 'heal':
        c.heal();
        break;
      case 'compact': {
        const node = c.node(a.node);
        if (node.appliedIndex > node.storage.snapshot().metadata.index) c.compact(a.node);
        break;
      }
      case 'transfer':
        c.leader()?.raw.transferLeadership(a.to);
        c.settle();
        break;
      case 'restart':
        c.restart(a.node);
        break;
      case 'loss':
        c.lossRate = a.rate;
        break;
      case 'read':
        swallowDrop(() => c.node(a.node).raw.readIndex(new TextEncoder().encode(`r${n++}`)));
        c.settle();
        break;
    }
    // Election safety.
    for (const node of c.nodes.values()) {
      const s = node.raw.status();
      if (s.softState.role !== 'leader') continue;
      const known = leaders.get(s.hardState.term);
      expect(known === undefined || known === node.id).toBe(true);
      leaders.set(s.hardState.term, node.id);
    }
    // State machine safety.
    const applied = [...c.nodes.values()].map((x) => x.applied);
    for (const x of applied) for (const y of applied) expect(isPrefix(x, y) || isPrefix(y, x)).toBe(true);
    // Committed entries agree wherever both logs still hold them.
    const nodes = [...c.nodes.values()];
    for (const x of nodes) {
      for (const y of nodes) {
        const hi = Math.min(x.raw.status().hardState.commit, y.raw.status().hardState.commit);
        const lo = Math.max(x.storage.firstIndex(), y.storage.firstIndex());
        for (let i = lo; i <= hi; i++) {
          if (i > x.storage.lastIndex() || i > y.storage.lastIndex()) break;
          expect(x.storage.term(i)).toBe(y.storage.term(i));
        }
      }
    }
  }
  // Liveness after healing: a leader emerges and commits a final proposal everywhere.
  c.heal();
  c.lossRate = 0;
  for (let attempt = 0; ; attempt++) {
    const l = c.elect(300);
    try {
      c.propose(l.id, 'final');
      break;
    } catch (e) {
      // A leadership transfer still in progress: it completes or aborts within an election timeout.
      if (!(e instanceof ProposalDroppedError) || attempt >= 3) throw e;
      c.tick(10);
    }
  }
  c.tick(5);
  for (const node of c.nodes.values()) expect(node.applied.at(-1)).toBe('final');
  // Every read that was answered points at or below what its node has applied.
  for (const node of c.nodes.values()) for (const rs of node.readStates) expect(rs.index).toBeLessThanOrEqual(node.appliedIndex);
}

describe('cluster under random faults', () => {
  it.each([3, 5])('%i nodes stay consistent and recover', (size) => {
    fc.assert(
      fc.property(fc.array(action(size), { minLength: 5, maxLength: 40 }), (actions) => run(size, actions)),
      { seed: 20_261_125 + size, numRuns: 40 },
    );
  });
});
