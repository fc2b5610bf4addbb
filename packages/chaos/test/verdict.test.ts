import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, parseChaosArgs, parseDuration, planFaults } from '../src/index.ts';
import { unavailabilityOf } from '../src/figures.ts';
import { leaderlessWindows } from '../src/observer.ts';
import { countedFrom, judge } from '../src/verdict.ts';
import { keepsMajority } from '../src/faults.ts';
import type { FaultRecord } from '../src/faults.ts';
import type { Check } from '../src/verdict.ts';
import { Recorder } from '../src/workload.ts';
import type { FinalState, RequestRecord } from '../src/workload.ts';

function emptyFinal(): FinalState {
  return { registers: new Map(), lists: new Map(), counts: new Map(), unread: [], transactionGroups: [] };
}

function verdictOf(recorder: Recorder, final: FinalState): Map<string, Check> {
  const checks = judge({ recorder, final, leaderless: [], faults: [], leaderlessBoundMs: 15_000, checkTimeoutMs: 10_000, crashes: [], notReady: [] });
  return new Map(checks.map((check) => [check.name.split(' (')[0], check]));
}

describe('options', () => {
  it('reads durations in ms, s, m and h, and bare seconds', () => {
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(parseDuration('60s', 'x')).toBe(60_000);
    expect(parseDuration('10m', 'x')).toBe(600_000);
    expect(parseDuration('1h', 'x')).toBe(3_600_000);
    expect(parseDuration('2', 'x')).toBe(2_000);
    expect(() => parseDuration('soon', 'duration')).toThrow(/--duration must be a duration/);
  });

  it('refuses unknown fault kinds, and expands groups', () => {
    expect(() => parseChaosArgs(['--faults', 'kill,meteor'])).toThrow(/unknown fault "meteor" \(expected kill, kill-leader, .*, disk-full\)/);
    expect(parseChaosArgs(['--faults', 'partition,disk,disk-full'])).toMatchObject({ faults: ['partition', 'disk-slow', 'disk-full'] });
  });

  it('has the documented defaults', () => {
    const options = parseChaosArgs(['--seed', '9']);
    expect(options).not.toBe('help');
    if (options === 'help') return;
    expect(options).toMatchObject({ seed: 9, durationMs: 60_000, faults: ['kill', 'kill-leader'], nodes: 5, routers: 2, partitions: 4 });
    expect(parseChaosArgs(['--faults', 'none'])).toMatchObject({ faults: [] });
    expect(parseChaosArgs(['-h'])).toBe('help');
  });
});

describe('fault schedule', () => {
  it('is a function of the seed, leaves quiet phases before and after, and never overlaps', () => {
    const options = { seed: 42, kinds: [...FAULT_KINDS], durationMs: 600_000, intervalMs: 8_000 };
    const plan = planFaults(options);
    expect(planFaults(options)).toEqual(plan);
    expect(planFaults({ ...options, seed: 43 })).not.toEqual(plan);
    expect(plan.length).toBeGreaterThan(30);
    expect(plan[0].at).toBeGreaterThanOrEqual(0.2 * options.durationMs);
    for (const [index, fault] of plan.entries()) {
      expect(fault.at + fault.durationMs).toBeLessThanOrEqual(0.75 * options.durationMs);
      if (index > 0) expect(fault.at).toBeGreaterThan(plan[index - 1].at + plan[index - 1].durationMs);
    }
    expect(new Set(plan.map((fault) => fault.kind))).toEqual(new Set(FAULT_KINDS));
    // Kinds come in rounds of each kind once: a short run sees them all.
    for (let start = 0; start + FAULT_KINDS.length <= plan.length; start += FAULT_KINDS.length) {
      expect(new Set(plan.slice(start, start + FAULT_KINDS.length).map((fault) => fault.kind))).toEqual(new Set(FAULT_KINDS));
    }
    expect(planFaults({ ...options, kinds: [] })).toEqual([]);
  });
});

describe('leaderless windows', () => {
  it('run from the first sample without a leader to the first with one; unknown samples change nothing', () => {
    const replicas = { 1: [1, 2, 3], 2: [2, 3, 4] };
    const windows = leaderlessWindows(
      [
        { at: 0, metaAnswered: true, leaderless: [], unknown: [], replicas },
        { at: 1000, metaAnswered: true, leaderless: [2], unknown: [], replicas },
        { at: 2000, metaAnswered: true, leaderless: [], unknown: [2], replicas },
        { at: 3000, metaAnswered: false, leaderless: [], unknown: [1, 2] },
        { at: 4000, metaAnswered: true, leaderless: [], unknown: [], replicas },
        // Partition 3, a split's right half, appears.
        { at: 5000, metaAnswered: true, leaderless: [1, 3], unknown: [], replicas: { ...replicas, 3: [1, 2, 3] } },
      ],
      [1, 2, 3],
    );
    expect(windows).toEqual([
      { partition: 2, start: 1000, end: 4000, replicas: [2, 3, 4] },
      { partition: 0, start: 3000, end: 4000, replicas: [1, 2, 3] },
      { partition: 1, start: 5000, end: 5000, replicas: [1, 2, 3] },
      { partition: 3, start: 5000, end: 5000, replicas: [1, 2, 3] },
    ]);
  });

  it('count against the bound only once a majority of the replicas is back', () => {
    const window = { partition: 2, start: 1_000, end: 30_000, replicas: [1, 2, 3] };
    const fault = (outage: FaultRecord['outage'], ready?: number): FaultRecord => ({ kind: 'partition', target: '-', start: 500, ...(ready === undefined ? {} : { healed: ready - 100, ready }), outage });
    // One node down of three: a majority stays, the whole window counts.
    expect(countedFrom(window, [fault({ down: [2] }, 20_000)])).toBe(1_000);
    // Node 1 cut off from 2 and 3: they still make a majority.
    expect(countedFrom(window, [fault({ down: [], sides: [[1], [2, 3, 4, 5]] }, 20_000)])).toBe(1_000);
    // 1 and 2 on different sides, 3 down: no majority until the heal at 20 s.
    expect(countedFrom(window, [fault({ down: [3], sides: [[1, 4], [2, 5]] }, 20_000)])).toBe(20_000);
    // A fault over before the window, or whose target was not ready again before its end.
    expect(countedFrom(window, [fault({ down: [1, 2] }, 900)])).toBe(1_000);
    expect(countedFrom(window, [fault({ down: [1, 2] })])).toBe(30_000);
    // Two faults overlapping: node 1 slow to come back from the first while node 2 is down.
    const first: FaultRecord = { kind: 'kill', target: 'node 1', start: 500, healed: 2_000, ready: 12_000, outage: { down: [1] } };
    const second: FaultRecord = { kind: 'kill', target: 'node 2', start: 8_000, healed: 9_000, ready: 10_000, outage: { down: [2] } };
    expect(countedFrom(window, [first, second])).toBe(10_000);
    expect(keepsMajority([1, 2, 3], [{ down: [], sides: [[1, 2], [3, 4, 5]] }])).toBe(true);
    expect(keepsMajority([1, 2, 3, 4, 5], [{ down: [5], sides: [[1, 2], [3, 4, 5]] }])).toBe(false);
    expect(keepsMajority([1, 2, 3], [{ down: [1] }, { down: [], sides: [[2], [1, 3]] }])).toBe(false);
    expect(keepsMajority([1, 2, 3], [])).toBe(true);
  });
});

describe('unavailability', () => {
  const request = (start: number, end: number, key: string, completion: RequestRecord['completion'], error?: string): RequestRecord => ({
    kind: 'put',
    client: 0,
    start,
    end,
    completion,
    keys: [key],
    ...(error === undefined ? {} : { error }),
  });

  it('is the longest a key went from a failed request to the end of its next successful one', () => {
    const requests = [
      request(100, 150, 'a', 'ok'),
      request(1_000, 4_000, 'a', 'indeterminate'),
      request(4_100, 4_200, 'a', 'failed'),
      request(4_300, 4_400, 'a', 'ok'),
      request(1_500, 1_600, 'b', 'failed'),
      request(1_700, 1_800, 'b', 'ok'),
    ];
    expect(unavailabilityOf(requests, 0, 10_000)).toBe(3_400);
    // A key still failing at the window's end counts to the end.
    expect(unavailabilityOf([request(2_000, 2_100, 'c', 'failed')], 0, 5_000)).toBe(3_000);
    // Conditional check failures are answers, not unavailability.
    expect(unavailabilityOf([request(2_000, 2_100, 'c', 'failed', 'ConditionalCheckFailedException')], 0, 5_000)).toBe(0);
  });
});

describe('verdict', () => {
  it('is clean on a consistent history', () => {
    const recorder = new Recorder(performance.now());
    recorder.history.push(
      { process: 0, key: 'kv/r0', call: 0, return: 10, type: 'put', value: '0-0' },
      { process: 1, key: 'kv/r0', call: 20, return: 30, type: 'get', output: '0-0' },
      { process: 0, key: 'kv/l0', call: 0, return: 10, type: 'append', value: '0-1' },
      { process: 1, key: 'kv/l0', call: 5, type: 'append', value: '1-0' },
      { process: 2, key: 'kv/c0', call: 0, return: 10, type: 'cas', expected: null, value: '1:2-0', ok: true },
      { process: 3, key: 'kv/c0', call: 20, type: 'cas', expected: '1:2-0', value: '2:3-0' },
    );
    recorder.tally('kv/c0').ok = 2;
    recorder.tally('kv/c0').indeterminate = 1;
    recorder.eventualReads.push({ key: 'kv/r0', client: 4, call: 5, return: 15, output: '0-0' });
    recorder.transactionReads.push({ keys: ['txn/g0/a', 'txn/g0/b'], call: 0, return: 5, values: ['0-3', '0-3'] });
    const final = emptyFinal();
    final.registers.set('kv/c0', '2:3-0');
    final.counts.set('kv/c0', 3);
    final.lists.set('kv/l0', ['0-1']);
    final.registers.set('txn/g0/a', '0-3');
    final.registers.set('txn/g0/b', '0-3');
    final.transactionGroups.push(['txn/g0/a', 'txn/g0/b']);
    const checks = [...verdictOf(recorder, final).values()];
    expect(checks.filter((check) => !check.ok)).toEqual([]);
  });

  it('finds a stale strong read, naming the key', () => {
    const recorder = new Recorder(performance.now());
    recorder.history.push(
      { process: 0, key: 'kv/r0', call: 0, return: 10, type: 'put', value: '0-0' },
      { process: 0, key: 'kv/r0', call: 20, return: 30, type: 'put', value: '0-1' },
      { process: 1, key: 'kv/r0', call: 40, return: 50, type: 'get', output: '0-0' },
    );
    const check = verdictOf(recorder, emptyFinal()).get('linearizable')!;
    expect(check.ok).toBe(false);
    expect(check.summary).toBe('VIOLATION on key kv/r0');
    expect(check.details).toContain('it returned "0-0", but the register holds "0-1"');
  });

  it('finds lost, duplicated and invented appends', () => {
    const recorder = new Recorder(performance.now());
    recorder.history.push(
      { process: 0, key: 'kv/l0', call: 0, return: 10, type: 'append', value: 'a' },
      { process: 0, key: 'kv/l0', call: 20, return: 30, type: 'append', value: 'b' },
    );
    const final = emptyFinal();
    final.lists.set('kv/l0', ['a', 'a', 'z']);
    const details = verdictOf(recorder, final).get('no lost or duplicated appends')!.details!;
    expect(details).toContain('duplicated append(s) ["a"]');
    expect(details).toContain('element(s) nobody appended ["z"]');
    expect(details).toContain('acknowledged append "b"');
  });

  it('finds counters off by a lost or a duplicated increment', () => {
    const recorder = new Recorder(performance.now());
    recorder.history.push({ process: 0, key: 'kv/c0', call: 0, return: 10, type: 'cas', expected: null, value: '1:0-0', ok: true });
    recorder.tally('kv/c1').ok = 3;
    const final = emptyFinal();
    final.registers.set('kv/c0', null);
    final.counts.set('kv/c1', 4);
    const check = verdictOf(recorder, final).get('exact counters')!;
    expect(check.ok).toBe(false);
    expect(check.details).toContain('kv/c0: compare-and-set count 0, but 1 succeeded');
    expect(check.details).toContain('kv/c1: ADD counter 4, but 3 increments succeeded and 0 may have');
  });

  it('finds eventual reads of values never written (or written only after the read returned) and torn transactions', () => {
    const recorder = new Recorder(performance.now());
    recorder.history.push({ process: 0, key: 'kv/r0', call: 100, return: 110, type: 'put', value: 'late' });
    recorder.eventualReads.push(
      { key: 'kv/r0', client: 1, call: 0, return: 50, output: 'late' },
      { key: 'kv/r0', client: 1, call: 200, return: 250, output: 'late' },
      { key: 'kv/l0', client: 1, call: 0, return: 50, output: ['ghost'] },
    );
    recorder.transactionReads.push({ keys: ['txn/g0/a', 'txn/g0/b'], call: 0, return: 5, values: ['x', null] });
    const checks = verdictOf(recorder, emptyFinal());
    const eventual = checks.get('eventual reads return only written values')!;
    expect(eventual.summary).toBe('2 read(s) of values never written');
    expect(checks.get('transactions all-or-nothing')!.details).toContain('txn/g0/a="x" txn/g0/b=null');
  });

  it('passes cross-partition groups whose items always agree, an indeterminate transaction applied whole or not at all', () => {
    const recorder = new Recorder(performance.now());
    const keys = ['kv/x0', 'txn/x0/x'];
    for (const key of keys) {
      recorder.history.push(
        { process: 0, key, call: 0, return: 10, type: 'put', value: '0-0' },
        // Indeterminate: it may have taken effect, on both items or neither.
        { process: 1, key, call: 20, type: 'put', value: '1-0' },
      );
    }
    recorder.transactionReads.push({ keys, call: 12, return: 15, values: ['0-0', '0-0'] }, { keys, call: 30, return: 35, values: ['1-0', '1-0'] });
    const final = emptyFinal();
    final.registers.set('kv/x0', '1-0');
    final.registers.set('txn/x0/x', '1-0');
    final.transactionGroups.push(keys);
    const checks = verdictOf(recorder, final);
    expect(checks.get('linearizable')!.ok).toBe(true);
    const check = checks.get('transactions all-or-nothing')!;
    expect(check.ok).toBe(true);
    expect(check.summary).toBe('2 transactional reads (2 across partitions) and 1 final groups saw both items of every transaction or neither');
  });

  it('finds a torn cross-partition transaction, in a transactional read and in the final state', () => {
    const recorder = new Recorder(performance.now());
    const keys = ['kv/x0', 'txn/x0/x'];
    for (const key of keys) recorder.history.push({ process: 0, key, call: 0, return: 10, type: 'put', value: '0-0' });
    recorder.history.push({ process: 1, key: 'kv/x0', call: 20, type: 'put', value: '1-0' }, { process: 1, key: 'txn/x0/x', call: 20, type: 'put', value: '1-0' });
    // Each item alone is linearizable; only together do they show the second transaction half applied.
    recorder.transactionReads.push({ keys, call: 30, return: 35, values: ['1-0', '0-0'] });
    const final = emptyFinal();
    final.registers.set('kv/x0', '1-0');
    final.registers.set('txn/x0/x', '0-0');
    final.transactionGroups.push(keys, ['txn/g0/a', 'txn/g0/b']);
    const checks = verdictOf(recorder, final);
    expect(checks.get('linearizable')!.ok).toBe(true);
    const check = checks.get('transactions all-or-nothing')!;
    expect(check.ok).toBe(false);
    expect(check.summary).toBe('2 torn transaction(s)');
    expect(check.details).toContain('read at 30..35 ms: kv/x0="1-0" txn/x0/x="0-0"');
    expect(check.details).toContain('at the end: kv/x0="1-0" txn/x0/x="0-0"');
    // A group never read at the end is the final-reads check's finding, not a torn transaction.
    expect(check.details).not.toContain('txn/g0');
  });
});
