import { describe, expect, it } from 'vitest';
import { RpcError, Status, type RoutedTo } from '@shoal/proto';
import { RequestCoalescer } from '../src/cluster/coalescer.ts';

/**
 * RequestCoalescer on its own, over calls that answer only when the test says: which requests go in
 * which call, and when, counted call by call.
 */

interface Call {
  requests: string[];
  answer(): void;
  fail(error: unknown): void;
}

function fakeCalls() {
  const calls: Call[] = [];
  const node = {};
  const coalescer = (maxInFlight?: number) =>
    new RequestCoalescer<object, string, string>(
      {
        one: (_rpc, _target, request) =>
          new Promise((resolve, reject) => calls.push({ requests: [request], answer: () => resolve(`done ${request}`), fail: reject })),
        many: (_rpc, _target, requests) =>
          new Promise((resolve, reject) => calls.push({ requests, answer: () => resolve(requests.map((request) => `done ${request}`)), fail: reject })),
      },
      maxInFlight === undefined ? {} : { maxInFlight },
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

  it('frees the slot of a failed call: its requests fail alike, the held ones go next', async () => {
    const { calls, node, coalescer } = fakeCalls();
    const bounded = coalescer(1);
    const failed = ['a', 'b'].map((request) => bounded.submit(node, target, request, {}).catch((error: unknown) => error));
    await nextTurn();
    const held = bounded.submit(node, target, 'c', {});
    await nextTurn();
    expect(calls).toHaveLength(1);
    const error = new RpcError(Status.UNAVAILABLE, 'connection lost');
    calls[0]!.fail(error);
    expect(await Promise.all(failed)).toEqual([error, error]);
    await settle();
    expect(calls.map((call) => call.requests)).toEqual([['a', 'b'], ['c']]);
    calls[1]!.answer();
    expect(await held).toBe('done c');
    await settle();
    expect(bounded.activeGroups).toBe(0);
  });
});
