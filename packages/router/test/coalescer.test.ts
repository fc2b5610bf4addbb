import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorDetailSchema, NodeState, RpcError, Status, type CallOptions, type RoutedTo } from '@shoal/proto';
import { MAX_COALESCED, MIN_HELD_SEND_MS, RequestCoalescer, RequestNotSent, type CoalescerOptions } from '../src/cluster/coalescer.ts';
import { classifyFailure } from '../src/cluster/retry.ts';

/**
 * RequestCoalescer on its own, over calls that answer only when the test says: which requests go in
 * which call, and when, counted call by call.
 */

interface Call {
  requests: string[];
  options: CallOptions;
  answer(): void;
  fail(error: unknown): void;
}

function fakeCalls() {
  const calls: Call[] = [];
  const node = {};
  const coalescer = (maxInFlight?: number, options: Omit<CoalescerOptions, 'maxInFlight'> = {}) =>
    new RequestCoalescer<object, string, string>(
      {
        one: (_rpc, _target, request, callOptions) =>
          new Promise((resolve, reject) => calls.push({ requests: [request], options: callOptions, answer: () => resolve(`done ${request}`), fail: reject })),
        many: (_rpc, _target, requests, callOptions) =>
          new Promise((resolve, reject) =>
            calls.push({ requests, options: callOptions, answer: () => resolve(requests.map((request) => `done ${request}`)), fail: reject }),
          ),
      },
      maxInFlight === undefined ? options : { maxInFlight, ...options },
    );
  return { calls, node, coalescer };
}

const target: RoutedTo = { partitionId: 4n, epoch: 2n };
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Lets the answer of a call reach the coalescer and its next call go out. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await nextTurn();
};

describe('RequestCoalescer', () => {
  it('sends each turn\'s requests at the end of the turn when calls in flight are not bounded', async () => {
    const { calls, node, coalescer } = fakeCalls();
    const unbounded = coalescer();
    const first = ['a', 'b'].map((request) => unbounded.submit(node, target, request, {}));
    await nextTurn();
    const second = ['c', 'd', 'e'].map((request) => unbounded.submit(node, target, request, {}));
    await nextTurn();
    expect(calls.map((call) => call.requests)).toEqual([['a', 'b'], ['c', 'd', 'e']]);
    for (const call of calls) call.answer();
    expect(await Promise.all([...first, ...second])).toEqual(['done a', 'done b', 'done c', 'done d', 'done e']);
    expect(unbounded.activeGroups).toBe(0);
  });

  it('holds the requests of later turns while a group has maxInFlight calls out, then sends them in one call', async () => {
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const results: Array<Promise<string>> = ['a', 'b'].map((request) => bounded.submit(node, target, request, {}));
    await nextTurn();
    expect(calls.map((call) => call.requests)).toEqual([['a', 'b']]);
    results.push(...['c', 'd'].map((request) => bounded.submit(node, target, request, {})));
    await nextTurn();
    results.push(bounded.submit(node, target, 'e', {}));
    await nextTurn();
    // Nothing more went while the first call was out.
    expect(calls).toHaveLength(1);
    // Another partition (or epoch) is a group of its own, not held.
    const other = bounded.submit(node, { partitionId: 5n, epoch: 2n }, 'x', {});
    await nextTurn();
    expect(calls.map((call) => call.requests)).toEqual([['a', 'b'], ['x']]);
    calls[0]!.answer();
    await settle();
    expect(calls.map((call) => call.requests)).toEqual([['a', 'b'], ['x'], ['c', 'd', 'e']]);
    calls[1]!.answer();
    calls[2]!.answer();
    expect(await Promise.all(results)).toEqual(['done a', 'done b', 'done c', 'done d', 'done e']);
    expect(await other).toBe('done x');
    expect(bounded.stats).toEqual({ coalescedCalls: 2, coalescedRequests: 5, singleCalls: 1 });
    await settle();
    expect(bounded.activeGroups).toBe(0);
  });

  it('frees the slot of a failed call: its requests fail alike, the held ones are given back unsent with its error', async () => {
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const failed = ['a', 'b'].map((request) => bounded.submit(node, target, request, {}).catch((error: unknown) => error));
    await nextTurn();
    const held = bounded.submit(node, target, 'c', {}).catch((error: unknown) => error);
    await nextTurn();
    expect(calls).toHaveLength(1);
    const error = new RpcError(Status.UNAVAILABLE, 'connection lost');
    calls[0]!.fail(error);
    expect(await Promise.all(failed)).toEqual([error, error]);
    // Never sent: the retry loop may send it again (elsewhere), as when no connection could be made.
    const notSent = await held;
    expect(notSent).toBeInstanceOf(RequestNotSent);
    expect((notSent as RequestNotSent).cause).toBe(error);
    expect(classifyFailure(notSent).kind).toBe('unreachable');
    await settle();
    expect(calls).toHaveLength(1);
    expect(bounded.activeGroups).toBe(0);
    // The slot is free: the next request goes at once.
    const next = bounded.submit(node, target, 'd', {});
    await nextTurn();
    expect(calls.map((call) => call.requests)).toEqual([['a', 'b'], ['d']]);
    calls[1]!.answer();
    expect(await next).toBe('done d');
  });

  it('gives the held requests the redirect of the call that failed before them (nothing of them was proposed either)', async () => {
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const sent = bounded.submit(node, target, 'a', {}).catch((error: unknown) => error);
    await nextTurn();
    const held = bounded.submit(node, target, 'b', {}).catch((error: unknown) => error);
    await nextTurn();
    const notLeader = RpcError.withDetail(Status.FAILED_PRECONDITION, 'not the leader', ErrorDetailSchema, {
      kind: { case: 'notLeader', value: { partitionId: 4n, leader: { id: 3n, address: '127.0.0.1:3', state: NodeState.UP } } },
    });
    calls[0]!.fail(notLeader);
    expect(await sent).toBe(notLeader);
    expect(classifyFailure(await held)).toEqual({ kind: 'notLeader', leader: { id: 3, address: '127.0.0.1:3' } });
  });

  it("keeps the held requests when a lone request's error is its own answer, not the call's failure", async () => {
    const { calls, node, coalescer } = fakeCalls();
    const ownAnswer = new RpcError(Status.FAILED_PRECONDITION, 'the condition failed');
    const bounded = coalescer(1, { isCallFailure: (error) => error !== ownAnswer });
    const refused = bounded.submit(node, target, 'a', {}).catch((error: unknown) => error);
    await nextTurn();
    const held = bounded.submit(node, target, 'b', {});
    await nextTurn();
    calls[0]!.fail(ownAnswer);
    expect(await refused).toBe(ownAnswer);
    await settle();
    expect(calls.map((call) => call.requests)).toEqual([['a'], ['b']]);
    calls[1]!.answer();
    expect(await held).toBe('done b');
  });

  it('fails only the requests a call answered with an error of their own (a part of a call that went as several)', async () => {
    const refused = new RpcError(Status.UNAVAILABLE, 'that part of the call failed');
    const coalescer = new RequestCoalescer<object, string, string>({
      one: async (_rpc, _target, request) => `done ${request}`,
      many: async (_rpc, _target, requests) => requests.map((request) => (request === 'b' ? refused : `done ${request}`)),
    });
    const node = {};
    const results = await Promise.allSettled(['a', 'b', 'c'].map((request) => coalescer.submit(node, target, request, {})));
    expect(results).toEqual([
      { status: 'fulfilled', value: 'done a' },
      { status: 'rejected', reason: refused },
      { status: 'fulfilled', value: 'done c' },
    ]);
  });

  it('sends a full call of held requests at once, past maxInFlight (a group holds fewer than MAX_COALESCED)', async () => {
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const results = [bounded.submit(node, target, 'first', {})];
    await nextTurn();
    const many = Array.from({ length: MAX_COALESCED + 2 }, (_, i) => `w${i}`);
    results.push(...many.map((request) => bounded.submit(node, target, request, {})));
    await nextTurn();
    expect(calls.map((call) => call.requests)).toEqual([['first'], many.slice(0, MAX_COALESCED)]);
    calls[0]!.answer();
    await settle();
    // The rest waits as usual, for the call out to be answered.
    expect(calls).toHaveLength(2);
    calls[1]!.answer();
    await settle();
    expect(calls.map((call) => call.requests.length)).toEqual([1, MAX_COALESCED, 2]);
    calls[2]!.answer();
    expect(await Promise.all(results)).toEqual(['first', ...many].map((request) => `done ${request}`));
  });
});

describe('RequestCoalescer deadlines of held requests (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("counts a held request's deadline from its submission: its call gets what is left, and held past it, it is given back unsent", async () => {
    vi.useFakeTimers();
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const first = bounded.submit(node, target, 'a', { timeoutMs: 1_000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((call) => [call.requests, call.options.timeoutMs])).toEqual([[['a'], 1_000]]);
    const held = bounded.submit(node, target, 'b', { timeoutMs: 1_000 });
    await vi.advanceTimersByTimeAsync(300);
    calls[0]!.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(await first).toBe('done a');
    // Held 300 ms: its call has the 700 ms left.
    expect(calls.map((call) => [call.requests, call.options.timeoutMs])).toEqual([[['a'], 1_000], [['b'], 700]]);
    const expiring = bounded.submit(node, target, 'c', { timeoutMs: 1_000 }).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    const notSent = await expiring;
    expect(notSent).toBeInstanceOf(RequestNotSent);
    expect(classifyFailure(notSent).kind).toBe('unreachable');
    calls[1]!.answer();
    expect(await held).toBe('done b');
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(2);
    expect(bounded.activeGroups).toBe(0);
  });

  it('gives a held request back unsent once less than MIN_HELD_SEND_MS of its deadline is left, but sends a fresh one with what it has', async () => {
    vi.useFakeTimers();
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const first = bounded.submit(node, target, 'a', { timeoutMs: 10_000 });
    await vi.advanceTimersByTimeAsync(0);
    let outcome: unknown;
    const held = bounded.submit(node, target, 'b', { timeoutMs: 1_000 }).then(
      (result) => (outcome = result),
      (error: unknown) => (outcome = error),
    );
    await vi.advanceTimersByTimeAsync(1_000 - MIN_HELD_SEND_MS - 1);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await held;
    expect(outcome).toBeInstanceOf(RequestNotSent);
    calls[0]!.answer();
    expect(await first).toBe('done a');
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((call) => call.requests)).toEqual([['a']]);
    // Never held: it goes with the little it was given.
    const fresh = bounded.submit(node, target, 'c', { timeoutMs: MIN_HELD_SEND_MS / 5 });
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((call) => [call.requests, call.options.timeoutMs])).toEqual([[['a'], 10_000], [['c'], MIN_HELD_SEND_MS / 5]]);
    calls[1]!.answer();
    expect(await fresh).toBe('done c');
  });

  it('answers every write within its deadline when the leader hangs (1,000 writes in 1 s, maxInFlight 2)', async () => {
    vi.useFakeTimers();
    const TIMEOUT = 10_000;
    // A unary call to a peer that never answers (partitioned, SIGSTOPped): DEADLINE_EXCEEDED at its deadline.
    const sizes: number[] = [];
    const timeouts: number[] = [];
    const hang = (size: number, options: CallOptions): Promise<never> =>
      new Promise((_, reject) => {
        sizes.push(size);
        timeouts.push(options.timeoutMs ?? Number.POSITIVE_INFINITY);
        setTimeout(() => reject(new RpcError(Status.DEADLINE_EXCEEDED, 'deadline')), options.timeoutMs);
      });
    const coalescer = new RequestCoalescer<object, number, number>(
      { one: (_rpc, _target, _write, options) => hang(1, options), many: (_rpc, _target, writes, options) => hang(writes.length, options) },
      { maxInFlight: 2 },
    );
    const node = {};
    const start = Date.now();
    const submittedAt: number[] = [];
    const answeredAt: number[] = [];
    const outcomes: string[] = [];
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < 1_000; i++) {
      submittedAt[i] = Date.now() - start;
      writes.push(
        coalescer.submit(node, target, i, { timeoutMs: TIMEOUT }).then(
          () => {
            outcomes[i] = 'ok';
          },
          (error: unknown) => {
            answeredAt[i] = Date.now() - start;
            outcomes[i] = classifyFailure(error).kind;
          },
        ),
      );
      if (i % 100 === 99) await vi.advanceTimersByTimeAsync(100);
    }
    await vi.advanceTimersByTimeAsync(10 * TIMEOUT);
    await Promise.all(writes);
    // Two calls, then held writes go a full call at a time; none waits past its own deadline.
    expect(sizes).toEqual([100, 100, 128, 128, 128, 128, 128, 128]);
    expect(timeouts.every((timeout) => timeout <= TIMEOUT)).toBe(true);
    expect(answeredAt.every((at, i) => at - submittedAt[i]! <= TIMEOUT)).toBe(true);
    // Sent ones are ambiguous (transient); the 32 still held when the first call failed were never sent.
    expect(outcomes.filter((outcome) => outcome === 'transient')).toHaveLength(968);
    expect(outcomes.slice(968)).toEqual(Array.from({ length: 32 }, () => 'unreachable'));
    expect(coalescer.activeGroups).toBe(0);
  });
});
