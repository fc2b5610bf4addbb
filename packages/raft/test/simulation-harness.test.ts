import { describe, expect, it } from 'vitest';
import type { Entry, HardState } from '@shoal/raft';
import { InvariantChecker, type LogView } from './sim/invariants.ts';
import { KvStateMachine, decodeCommand, encodeCommand } from './sim/kv.ts';
import { SimNetwork, type NetworkProfile } from './sim/network.ts';
import { Prng } from './sim/prng.ts';
import { Scheduler } from './sim/scheduler.ts';

const encoder = new TextEncoder();

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 'normal', data: encoder.encode(text) };
}

/** A log held in an array, starting at index 1. */
function logOf(entries: Entry[]): LogView {
  return {
    firstIndex: () => 1,
    lastIndex: () => entries.length,
    termAt: (index) => (index === 0 ? 0 : entries[index - 1]?.term),
    entryAt: (index) => entries[index - 1],
  };
}

function checker(): InvariantChecker {
  return new InvariantChecker(() => 0);
}

describe('Prng', () => {
  it('is a pure function of its seed', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const drawsA = Array.from({ length: 100 }, () => a.nextUint32());
    const drawsB = Array.from({ length: 100 }, () => b.nextUint32());
    expect(drawsA).toEqual(drawsB);
    expect(new Set(drawsA).size).toBe(100);
    expect(Array.from({ length: 100 }, () => new Prng(43).nextUint32())[0]).not.toBe(drawsA[0]);
  });

  it('draws integers over the whole range and nothing outside it', () => {
    const prng = new Prng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const n = prng.int(3, 9);
      expect(n).toBeGreaterThanOrEqual(3);
      expect(n).toBeLessThan(9);
      seen.add(n);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6, 7, 8]);
    expect(() => prng.int(5, 5)).toThrow(RangeError);
  });

  it('forks streams that do not follow the parent', () => {
    const parent = new Prng(1);
    const child = parent.fork();
    expect(child.nextUint32()).not.toBe(parent.nextUint32());
  });
});

describe('Scheduler', () => {
  it('runs events in time order, ties in scheduling order, and advances the clock', () => {
    const scheduler = new Scheduler();
    const order: string[] = [];
    scheduler.at(30, () => order.push('c'));
    scheduler.at(10, () => order.push('a1'));
    scheduler.at(10, () => order.push('a2'));
    scheduler.at(20, () => {
      order.push('b');
      scheduler.after(5, () => order.push('b+5'));
    });
    scheduler.runUntil(26);
    expect(order).toEqual(['a1', 'a2', 'b', 'b+5']);
    expect(scheduler.now).toBe(26);
    scheduler.runUntil(100);
    expect(order.at(-1)).toBe('c');
    expect(() => scheduler.at(50, () => undefined)).toThrow(RangeError);
  });

  it('stops as soon as asked', () => {
    const scheduler = new Scheduler();
    let count = 0;
    for (let t = 1; t <= 10; t++) scheduler.at(t, () => count++);
    scheduler.runUntil(100, () => count === 4);
    expect(count).toBe(4);
    expect(scheduler.now).toBe(4);
  });
});

describe('SimNetwork', () => {
  const reliable: NetworkProfile = { minDelayMs: 1, maxDelayMs: 50, dropRate: 0, duplicateRate: 0, slowRate: 0, slowDelayMs: 0 };

  it('delivers with delays that reorder messages', () => {
    const scheduler = new Scheduler();
    const network = new SimNetwork(new Prng(3), scheduler, reliable);
    const arrived: number[] = [];
    for (let i = 0; i < 50; i++) network.send(1, 2, () => arrived.push(i));
    scheduler.runUntil(1000);
    expect([...arrived].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(arrived).not.toEqual([...arrived].sort((a, b) => a - b));
  });

  it('drops and duplicates at the configured rates', () => {
    const scheduler = new Scheduler();
    const network = new SimNetwork(new Prng(4), scheduler, { ...reliable, dropRate: 0.2, duplicateRate: 0.2 });
    let arrived = 0;
    for (let i = 0; i < 2000; i++) network.send(1, 2, () => arrived++);
    scheduler.runUntil(1000);
    expect(network.duplicated).toBeGreaterThan(300);
    expect(network.dropped).toBeGreaterThan(300);
    expect(arrived).toBe(2000 + network.duplicated - network.dropped);
  });

  it('cuts links one way, loses messages in flight when a partition starts, and heals', () => {
    const scheduler = new Scheduler();
    const network = new SimNetwork(new Prng(5), scheduler, reliable);
    const arrived: string[] = [];
    network.blockLink(1, 2);
    network.send(1, 2, () => arrived.push('1>2'), (outcome) => arrived.push(`1>2 ${outcome}`));
    network.send(2, 1, () => arrived.push('2>1'));
    scheduler.runUntil(100);
    expect(arrived).toEqual(['1>2 dropped', '2>1']);

    network.healAll();
    network.send(1, 3, () => arrived.push('1>3'));
    network.partition([1], [2, 3]);
    scheduler.runUntil(200);
    expect(arrived).not.toContain('1>3');
    expect(network.isLinkUp(3, 1)).toBe(false);
    network.healAll();
    expect(network.blockedLinks()).toEqual([]);
  });
});

describe('KvStateMachine', () => {
  it('applies put, cas and append, skips a command it has already seen from that client, and answers a retry of the last one', () => {
    const kv = new KvStateMachine();
    expect(kv.apply({ kind: 'put', client: 1, seq: 1, key: 'x', value: 'a' })).toEqual({ kind: 'applied', ok: true });
    expect(kv.apply({ kind: 'cas', client: 2, seq: 1, key: 'x', expected: 'b', value: 'c' })).toEqual({ kind: 'applied', ok: false });
    expect(kv.apply({ kind: 'cas', client: 2, seq: 2, key: 'x', expected: 'a', value: 'c' })).toEqual({ kind: 'applied', ok: true });
    expect(kv.apply({ kind: 'put', client: 1, seq: 1, key: 'x', value: 'a' })).toEqual({ kind: 'duplicate', ok: true });
    expect(kv.apply({ kind: 'cas', client: 2, seq: 1, key: 'x', expected: 'b', value: 'c' })).toEqual({ kind: 'duplicate', ok: undefined });
    expect(kv.apply({ kind: 'append', client: 1, seq: 2, key: 'l', value: 'v1' })).toEqual({ kind: 'applied', ok: true });
    expect(kv.apply({ kind: 'append', client: 1, seq: 2, key: 'l', value: 'v1' })).toEqual({ kind: 'duplicate', ok: true });
    expect(kv.apply({ kind: 'noop', token: 'probe' })).toEqual({ kind: 'noop', token: 'probe' });
    expect(kv.get('x')).toBe('c');
    expect(kv.get('y')).toBeNull();
    expect(kv.readList('l')).toEqual(['v1']);
  });

  it('round-trips through snapshot bytes and serializes equal states equally', () => {
    const kv = new KvStateMachine();
    kv.apply({ kind: 'put', client: 1, seq: 1, key: 'y', value: 'b' });
    kv.apply({ kind: 'put', client: 2, seq: 1, key: 'x', value: 'a' });
    kv.apply({ kind: 'append', client: 1, seq: 2, key: 'l', value: 'v' });
    const restored = KvStateMachine.restore(kv.serialize());
    expect(restored.serialize()).toEqual(kv.serialize());
    expect(restored.apply({ kind: 'put', client: 1, seq: 2, key: 'x', value: 'z' })).toEqual({ kind: 'duplicate', ok: true });
    expect(KvStateMachine.restore(new Uint8Array(0)).get('x')).toBeNull();
    const command = { kind: 'cas', client: 3, seq: 9, key: 'x', expected: null, value: 'q' } as const;
    expect(decodeCommand(encodeCommand(command))).toEqual(command);
  });
});

describe('InvariantChecker', () => {
  it('accepts a consistent run', () => {
    const check = checker();
    const log = [entry(1, 1), entry(2, 1), entry(3, 2)];
    for (const node of [1, 2]) {
      check.onEntriesPersisted(node, log, logOf(log));
      check.onHardStatePersisted(node, { term: 2, vote: 1, commit: 3 }, logOf(log));
      for (const e of log) check.onApply(node, e);
    }
    check.onLeader(1, 3, logOf(log));
    expect(check.violations).toEqual([]);
    expect(check.committedIndex).toBe(3);
  });

  it('reports two leaders in one term', () => {
    const check = checker();
    check.onLeader(1, 5, logOf([]));
    check.onLeader(2, 5, logOf([]));
    expect(check.violations.map((v) => v.invariant)).toEqual(['election safety']);
  });

  it('reports a vote changed within a term and a term going back', () => {
    const check = checker();
    const hs = (term: number, vote: number): HardState => ({ term, vote, commit: 0 });
    check.onHardStatePersisted(1, hs(3, 2), logOf([]));
    check.onHardStatePersisted(1, hs(3, 3), logOf([]));
    check.onHardStatePersisted(1, hs(2, 3), logOf([]));
    expect(check.violations.map((v) => v.invariant)).toEqual(['vote safety', 'term monotonic']);
  });

  it('reports one (index, term) naming two entries, or two different predecessors', () => {
    const check = checker();
    const a = [entry(1, 1), entry(2, 2, 'a')];
    check.onEntriesPersisted(1, a, logOf(a));
    const b = [entry(1, 1), entry(2, 2, 'b')];
    check.onEntriesPersisted(2, b, logOf(b));
    const c = [entry(1, 3), entry(2, 2, 'a')];
    check.onEntriesPersisted(3, [c[1]], logOf(c));
    expect(check.violations.map((v) => v.invariant)).toEqual(['log matching', 'log matching']);
  });

  it('reports a leader missing a committed entry', () => {
    const check = checker();
    const full = [entry(1, 1), entry(2, 1)];
    check.onApply(1, full[0]);
    check.onApply(1, full[1]);
    check.onLeader(2, 2, logOf([entry(1, 1)]));
    expect(check.violations.map((v) => v.invariant)).toEqual(['leader completeness']);
  });

  it('reports nodes applying different entries at one index, or out of order', () => {
    const check = checker();
    check.onApply(1, entry(1, 1, 'a'));
    check.onApply(2, entry(1, 1, 'b'));
    check.onApply(2, entry(3, 1));
    expect(check.violations.map((v) => v.invariant)).toEqual(['state machine safety', 'apply order']);
  });

  it('reports different states at one applied index', () => {
    const check = checker();
    check.onStateAt(1, 7, encoder.encode('{"x":1}'));
    check.onStateAt(2, 7, encoder.encode('{"x":1}'));
    check.onStateAt(3, 7, encoder.encode('{"x":2}'));
    expect(check.violations.map((v) => v.invariant)).toEqual(['state machine safety']);
  });

  it('reports a restart that lost persisted state or a committed entry', () => {
    const check = checker();
    const log = [entry(1, 1), entry(2, 1)];
    check.onEntriesPersisted(1, log, logOf(log));
    check.onHardStatePersisted(1, { term: 1, vote: 1, commit: 2 }, logOf(log));
    check.onRestart(1, { term: 1, vote: 1, commit: 2 }, logOf(log));
    expect(check.violations).toEqual([]);
    check.onRestart(1, { term: 1, vote: 0, commit: 2 }, logOf(log));
    check.onRestart(1, { term: 1, vote: 1, commit: 2 }, logOf([entry(1, 1), entry(2, 3)]));
    expect(check.violations.map((v) => v.invariant)).toEqual(['durability', 'durability']);
  });

  it('reports a persisted commit index past the log', () => {
    const check = checker();
    check.onHardStatePersisted(1, { term: 1, vote: 1, commit: 3 }, logOf([entry(1, 1)]));
    expect(check.violations.map((v) => v.invariant)).toEqual(['commit within log']);
  });
});
