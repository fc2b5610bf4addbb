import { describe, expect, it } from 'vitest';
import { Inflights } from '../src/inflights.ts';
import { Progress } from '../src/progress.ts';

describe('Inflights', () => {
  it('is full at its message capacity and frees prefixes up to an index, wrapping around', () => {
    const inf = new Inflights(4, Infinity);
    for (const i of [1, 2, 3, 4]) inf.add(i, 1);
    expect(inf.full()).toBe(true);
    expect(() => inf.add(5, 1)).toThrow();
    inf.freeLE(2);
    expect(inf.toArray()).toEqual([3, 4]);
    inf.add(5, 1);
    inf.add(6, 1);
    expect(inf.toArray()).toEqual([3, 4, 5, 6]);
    inf.freeLE(5);
    expect(inf.toArray()).toEqual([6]);
    inf.freeLE(100);
    expect(inf.count).toBe(0);
  });

  it('is full once its bytes reach the byte bound, and freeing releases bytes', () => {
    const inf = new Inflights(10, 100);
    inf.add(1, 60);
    expect(inf.full()).toBe(false);
    inf.add(2, 40);
    expect(inf.full()).toBe(true);
    expect(inf.bytes).toBe(100);
    inf.freeFirstOne();
    expect(inf.bytes).toBe(40);
    expect(inf.full()).toBe(false);
  });

  it('reset empties the window', () => {
    const inf = new Inflights(2, Infinity);
    inf.add(1, 5);
    inf.reset();
    expect(inf.count).toBe(0);
    expect(inf.bytes).toBe(0);
  });
});

const progress = (match: number, next: number, cap = 3) => new Progress(match, next, new Inflights(cap, Infinity), false);

describe('Progress', () => {
  it('probe pauses after one message and resumes on an update', () => {
    const p = progress(0, 1);
    expect(p.isPaused()).toBe(false);
    p.sentEntries(1, 10);
    expect(p.isPaused()).toBe(true);
    expect(p.next).toBe(1);
    expect(p.maybeUpdate(1)).toBe(true);
    expect(p.isPaused()).toBe(false);
    expect(p.next).toBe(2);
  });

  it('replicate advances next optimistically and pauses when the window is full', () => {
    const p = progress(5, 6);
    p.becomeReplicate();
    p.sentEntries(2, 10);
    p.sentEntries(1, 10);
    expect(p.next).toBe(9);
    expect(p.isPaused()).toBe(false);
    p.sentEntries(1, 10);
    expect(p.isPaused()).toBe(true);
    p.maybeUpdate(7);
    p.inflights.freeLE(7);
    expect(p.isPaused()).toBe(false);
  });

  it('maybeUpdate ignores old acknowledgements', () => {
    const p = progress(5, 10);
    expect(p.maybeUpdate(4)).toBe(false);
    expect(p.maybeUpdate(5)).toBe(false);
    expect(p.maybeUpdate(7)).toBe(true);
    expect([p.match, p.next]).toEqual([7, 10]);
    expect(p.maybeUpdate(12)).toBe(true);
    expect([p.match, p.next]).toEqual([12, 13]);
  });

  it.each([
    // replicate: a rejection above match resets next to match+1; at or below match it is stale
    { state: 'replicate', match: 5, next: 10, rejected: 9, hint: 9, ok: true, wnext: 6 },
    { state: 'replicate', match: 5, next: 10, rejected: 5, hint: 5, ok: false, wnext: 10 },
    // probe: only the answer to the outstanding probe (next-1) counts
    { state: 'probe', match: 0, next: 10, rejected: 8, hint: 8, ok: false, wnext: 10 },
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 9, ok: true, wnext: 9 },
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 4, ok: true, wnext: 5 },
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 0, ok: true, wnext: 1 },
    { state: 'probe', match: 3, next: 10, rejected: 9, hint: 1, ok: true, wnext: 4 },
  ] as const)('maybeDecrTo in $state (match $match, next $next, rejected $rejected, hint $hint)', (t) => {
    const p = progress(t.match, t.next);
    if (t.state === 'replicate') {
      p.becomeReplicate();
      p.next = t.next;
    }
    expect(p.maybeDecrTo(t.rejected, t.hint)).toBe(t.ok);
    expect(p.next).toBe(t.wnext);
  });

  it('snapshot state pauses everything; becoming probe resumes after the snapshot', () => {
    const p = progress(3, 4);
    p.becomeSnapshot(20);
    expect(p.isPaused()).toBe(true);
    p.becomeProbe();
    expect(p.state).toBe('probe');
    expect(p.next).toBe(21);
    expect(p.pendingSnapshot).toBe(0);
  });
});
