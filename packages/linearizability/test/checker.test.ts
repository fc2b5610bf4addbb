import { describe, expect, it } from 'vitest';
import { checkKvHistory, formatHistory } from '../src/index.ts';
import type { KvOperation } from '../src/index.ts';
import { append, cas, get, put, readList } from './operations.ts';

function verdict(history: KvOperation[]): boolean {
  const result = checkKvHistory(history);
  expect(result.timedOut).toBe(false);
  return result.ok;
}

describe('registers: linearizable histories pass', () => {
  it('accepts the empty history', () => {
    expect(checkKvHistory([])).toEqual({ ok: true, timedOut: false, keysChecked: 0 });
  });

  it('accepts a sequential history, including a read of an absent key', () => {
    expect(verdict([get(1, 'x', 0, 1, null), put(1, 'x', 2, 3, 'a'), get(2, 'x', 4, 5, 'a'), put(2, 'x', 6, 7, 'b'), get(1, 'x', 8, 9, 'b')])).toBe(true);
  });

  it('lets a read overlapping a write see either the old or the new value', () => {
    const write = put(1, 'x', 0, 10, 'a');
    expect(verdict([write, get(2, 'x', 1, 2, null), get(3, 'x', 3, 4, 'a')])).toBe(true);
    expect(verdict([write, get(2, 'x', 1, 2, 'a'), get(3, 'x', 3, 4, 'a')])).toBe(true);
  });

  it('orders overlapping writes as the reads require, even against return order', () => {
    // a returns first, yet the read after both sees a: b must have taken effect first.
    expect(verdict([put(1, 'x', 0, 5, 'a'), put(2, 'x', 1, 8, 'b'), get(3, 'x', 9, 10, 'a')])).toBe(true);
  });

  it('treats operations that touch at one instant as concurrent', () => {
    expect(verdict([put(1, 'x', 0, 5, 'a'), get(2, 'x', 5, 6, null)])).toBe(true);
  });

  it('accepts compare-and-set outcomes consistent with one order', () => {
    expect(
      verdict([
        cas(1, 'x', 0, 1, null, 'a', true),
        cas(2, 'x', 2, 6, 'a', 'b', true),
        cas(3, 'x', 3, 7, 'a', 'c', false),
        cas(4, 'x', 8, 9, 'b', 'd', true),
        get(1, 'x', 10, 11, 'd'),
      ]),
    ).toBe(true);
  });

  it('assumes an indeterminate write applied when a read saw it, even long after it timed out', () => {
    expect(verdict([put(1, 'x', 0, 1, 'a'), put(2, 'x', 2, undefined, 'b'), get(1, 'x', 10, 11, 'a'), get(1, 'x', 20, 21, 'b')])).toBe(true);
  });

  it('assumes an indeterminate write never applied when nothing saw it', () => {
    expect(verdict([put(1, 'x', 0, 1, 'a'), put(2, 'x', 2, undefined, 'b'), get(1, 'x', 10, 11, 'a'), get(3, 'x', 20, 21, 'a')])).toBe(true);
  });

  it('accepts an indeterminate compare-and-set either way', () => {
    const before = [put(1, 'x', 0, 1, 'a'), cas(2, 'x', 2, undefined, 'a', 'b')];
    expect(verdict([...before, get(1, 'x', 5, 6, 'b')])).toBe(true);
    expect(verdict([...before, get(1, 'x', 5, 6, 'a')])).toBe(true);
  });

  it('lets an unread indeterminate write explain a failed compare-and-set', () => {
    const history = [put(1, 'x', 0, 1, 'a'), put(2, 'x', 2, undefined, 'u'), cas(1, 'x', 5, 6, 'a', 'c', false)];
    expect(verdict(history)).toBe(true);
    expect(verdict(history.filter((op) => op.process !== 2))).toBe(false);
  });

  it('ignores indeterminate reads', () => {
    expect(verdict([put(1, 'x', 0, 1, 'a'), get(2, 'x', 2, undefined), get(1, 'x', 3, 4, 'a')])).toBe(true);
  });
});

describe('registers: violations are caught', () => {
  it('catches a stale read, and explains it', () => {
    const history = [put(1, 'x', 0, 1, 'a'), put(2, 'x', 2, 3, 'b'), get(3, 'x', 4, 5, 'a')];
    const result = checkKvHistory(history);
    expect(result.ok).toBe(false);
    expect(result.failure?.key).toBe('x');
    expect(result.failure?.operations).toEqual(history);
    const explanation = result.failure!.explanation;
    expect(explanation).toContain('Longest linearizable prefix found: 2 operation(s).');
    expect(explanation).toMatch(/1\. p1 put "a"[\s\S]*2\. p2 put "b"/);
    expect(explanation).toContain('State after the prefix: "b".');
    expect(explanation).toContain('Then p3 get → "a"  [4 .. 5] must take effect next, but cannot: it returned "a", but the register holds "b";');
  });

  it('catches a lost write', () => {
    expect(verdict([put(1, 'x', 0, 1, 'a'), get(2, 'x', 2, 3, null)])).toBe(false);
  });

  it('catches a read of a value never written', () => {
    expect(verdict([put(1, 'x', 0, 1, 'a'), get(2, 'x', 2, 3, 'z')])).toBe(false);
    expect(verdict([get(2, 'x', 0, 3, 'z')])).toBe(false);
  });

  it('catches a read going back in time while a write is in flight', () => {
    expect(verdict([put(1, 'x', 0, 10, 'a'), get(2, 'x', 1, 2, 'a'), get(3, 'x', 3, 4, null)])).toBe(false);
  });

  it('catches a double-applied compare-and-set', () => {
    const history = [put(1, 'x', 0, 1, '0'), cas(2, 'x', 2, 5, '0', '1', true), cas(3, 'x', 2, 5, '0', '2', true)];
    expect(verdict(history)).toBe(false);
    expect(verdict([cas(1, 'x', 0, 1, null, 'a', true), cas(2, 'x', 2, 3, null, 'b', true)])).toBe(false);
  });

  it('catches a compare-and-set that failed although its expected value was there', () => {
    const result = checkKvHistory([put(1, 'x', 0, 1, 'a'), cas(2, 'x', 2, 3, 'a', 'b', false)]);
    expect(result.ok).toBe(false);
    expect(result.failure?.explanation).toContain('it failed, but the register holds "a", which is what it expected');
  });

  it('catches a value seen after an indeterminate write overwrote it', () => {
    const history = [put(1, 'x', 0, 1, 'a'), put(2, 'x', 2, undefined, 'b'), get(1, 'x', 10, 11, 'b'), get(1, 'x', 20, 21, 'a')];
    expect(verdict(history)).toBe(false);
  });

  it('catches an indeterminate compare-and-set that cannot have applied', () => {
    expect(verdict([put(1, 'x', 0, 1, 'a'), cas(2, 'x', 2, undefined, 'z', 'b'), get(1, 'x', 5, 6, 'b')])).toBe(false);
  });
});

describe('lists: append and read-list', () => {
  it('accepts appends in the order the reads show, concurrent ones in either order', () => {
    expect(verdict([append(1, 'l', 0, 1, 'x'), append(2, 'l', 2, 3, 'y'), readList(3, 'l', 4, 5, ['x', 'y'])])).toBe(true);
    expect(verdict([append(1, 'l', 0, 10, 'x'), append(2, 'l', 0, 10, 'y'), readList(3, 'l', 11, 12, ['y', 'x'])])).toBe(true);
    expect(verdict([readList(3, 'l', 0, 1, [])])).toBe(true);
  });

  it('assumes an indeterminate append applied when a read saw it, and not when none did', () => {
    const pending = append(1, 'l', 0, undefined, 'x');
    expect(verdict([pending, readList(2, 'l', 1, 2, []), readList(2, 'l', 5, 6, ['x'])])).toBe(true);
    expect(verdict([pending, readList(2, 'l', 1, 2, []), readList(2, 'l', 5, 6, [])])).toBe(true);
    expect(verdict([pending, readList(2, 'l', 5, 6, ['x']), readList(2, 'l', 7, 8, [])])).toBe(false);
  });

  it('catches a lost append', () => {
    expect(verdict([append(1, 'l', 0, 1, 'x'), append(1, 'l', 2, 3, 'y'), readList(2, 'l', 4, 5, ['y'])])).toBe(false);
  });

  it('catches a duplicated append', () => {
    expect(verdict([append(1, 'l', 0, 1, 'x'), readList(2, 'l', 2, 3, ['x', 'x'])])).toBe(false);
  });

  it('catches reordered appends, and explains it', () => {
    const result = checkKvHistory([append(1, 'l', 0, 1, 'x'), append(1, 'l', 2, 3, 'y'), readList(2, 'l', 4, 5, ['y', 'x'])]);
    expect(result.ok).toBe(false);
    expect(result.failure?.explanation).toContain('p1 append "x"  [0 .. 1] must take effect next, but cannot: a completed read shows it right after ["y"], but the list is [] here;');
  });

  it('catches reads that disagree on the order of concurrent appends', () => {
    const appends = [append(1, 'l', 0, 10, 'x'), append(2, 'l', 0, 10, 'y')];
    expect(verdict([...appends, readList(3, 'l', 11, 12, ['x', 'y']), readList(3, 'l', 13, 14, ['y', 'x'])])).toBe(false);
  });
});

describe('many keys', () => {
  it('checks each key on its own and names the failing one', () => {
    const history = [
      put(1, 'a', 0, 1, '1'),
      append(2, 'l', 0, 1, 'x'),
      put(1, 'b', 2, 3, '1'),
      get(2, 'a', 2, 3, '1'),
      readList(1, 'l', 4, 5, []),
      get(2, 'b', 4, 5, '1'),
    ];
    const result = checkKvHistory(history);
    expect(result).toMatchObject({ ok: false, timedOut: false, keysChecked: 2, failure: { key: 'l' } });
    expect(checkKvHistory(history.filter((op) => op.key !== 'l'))).toEqual({ ok: true, timedOut: false, keysChecked: 2 });
  });

  it('rejects a key used both as a register and as a list', () => {
    expect(() => checkKvHistory([put(1, 'k', 0, 1, 'a'), append(1, 'k', 2, 3, 'x')])).toThrow(/both as a register and as a list/);
  });

  it('rejects malformed operations', () => {
    expect(() => checkKvHistory([put(1, 'k', 5, 1, 'a')])).toThrow(/returns \(1\) before it is called \(5\)/);
    expect(() => checkKvHistory([get(1, 'k', 0, 1)])).toThrow(/completed get needs an output/);
    expect(() => checkKvHistory([{ process: 1, key: 'k', call: 0, return: 1, type: 'cas', expected: null, value: 'a' }])).toThrow(/needs ok/);
    expect(() => checkKvHistory([put(1, 'k', Number.NaN, 1, 'a')])).toThrow(/finite/);
  });
});

describe('formatHistory', () => {
  it('prints one aligned line per operation in call order, with ? for unknowns', () => {
    const text = formatHistory([get(2, 'x', 3, undefined), put(1, 'x', 0, 12, 'a'), cas(3, 'longer', 1, 2, null, 'b', true)]);
    expect(text.split('\n')).toEqual([
      '[0 .. 12]  "x"       p1 put "a"',
      '[1 .. 2]   "longer"  p3 cas absent → "b" ok',
      '[3 .. ?]   "x"       p2 get → ? (indeterminate)',
    ]);
  });
});
