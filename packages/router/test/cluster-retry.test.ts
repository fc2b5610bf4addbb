import { describe, expect, it } from 'vitest';
import { DynamoDbError, initialPartitions } from '@shoal/model';
import { ErrorDetailSchema, RpcError, Status, dynamoDbErrorToRpc, partitionDescriptorToWire } from '@shoal/proto';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { backoffDelay, classifyFailure, RetryBudget } from '../src/cluster/retry.ts';

describe('what a failed call proves', () => {
  it('NotLeader names the leader (id and address), or none during an election', () => {
    const withLeader = RpcError.withDetail(Status.FAILED_PRECONDITION, 'not leader', ErrorDetailSchema, {
      kind: { case: 'notLeader', value: { partitionId: 4n, leader: { id: 2n, address: '127.0.0.1:7002' } } },
    });
    expect(classifyFailure(withLeader)).toEqual({ kind: 'notLeader', leader: { id: 2, address: '127.0.0.1:7002' } });
    const none = RpcError.withDetail(Status.FAILED_PRECONDITION, 'not leader', ErrorDetailSchema, { kind: { case: 'notLeader', value: { partitionId: 4n } } });
    expect(classifyFailure(none)).toEqual({ kind: 'notLeader' });
  });

  it('StaleEpoch and KeyOutOfRange carry the current descriptor', () => {
    const [current] = initialPartitions(7, 1, 3);
    // Keys as the wire decodes them: plain Uint8Arrays.
    const newer = { ...current, startKey: Uint8Array.from(current.startKey), endKey: Uint8Array.from(current.endKey), epoch: 5, replicas: [{ nodeId: 1, role: 'voter' as const }] };
    for (const kind of ['staleEpoch', 'keyOutOfRange'] as const) {
      const error = RpcError.withDetail(Status.FAILED_PRECONDITION, kind, ErrorDetailSchema, { kind: { case: kind, value: { current: partitionDescriptorToWire(newer) } } });
      expect(classifyFailure(error)).toEqual({ kind, current: newer });
    }
  });

  it('a DynamoDB error detail is the DynamoDbError itself', () => {
    const failure = classifyFailure(dynamoDbErrorToRpc(new DynamoDbError('ValidationException', 'Item size has exceeded the maximum allowed size')));
    expect(failure).toMatchObject({ kind: 'dynamodb', error: { type: 'ValidationException', message: 'Item size has exceeded the maximum allowed size', statusCode: 400 } });
  });

  it('a connection never established proves nothing was sent; other UNAVAILABLEs do not', () => {
    expect(classifyFailure(new RpcError(Status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1')).kind).toBe('unreachable');
    expect(classifyFailure(new RpcError(Status.UNAVAILABLE, 'raft proposal timed out')).kind).toBe('transient');
    expect(classifyFailure(new RpcError(Status.DEADLINE_EXCEEDED, 'Deadline exceeded')).kind).toBe('transient');
  });

  it("a node whose map is behind the request's epoch refused it before proposing", () => {
    const error = new RpcError(Status.UNAVAILABLE, 'partition 3: this node knows epoch 1, the request was routed at epoch 2; its map is behind, retry');
    expect(classifyFailure(error).kind).toBe('nodeMapBehind');
  });

  it('a refusal that retrying cannot cure is broken', () => {
    expect(classifyFailure(new RpcError(Status.INVALID_ARGUMENT, 'corrupt message')).kind).toBe('broken');
    expect(classifyFailure(new RpcError(Status.UNIMPLEMENTED, 'no such method')).kind).toBe('broken');
    expect(classifyFailure(new TypeError('oops')).kind).toBe('broken');
  });
});

describe('retry bounds', () => {
  it('a budget stops after its attempts', () => {
    const budget = new RetryBudget({ attempts: 3, totalMs: 60_000, baseDelayMs: 1, maxDelayMs: 1 });
    expect([budget.next(), budget.next(), budget.next(), budget.next()]).toEqual([true, true, true, false]);
  });

  it('a budget stops after its time, and never sleeps past it', async () => {
    const budget = new RetryBudget({ attempts: 1_000, totalMs: 0, baseDelayMs: 60_000, maxDelayMs: 60_000 });
    expect(budget.next()).toBe(true);
    await budget.pause();
    await new Promise((resolve) => setTimeout(resolve, 2));
    expect(budget.next()).toBe(false);
  });

  it('backoff grows to its ceiling and no further', () => {
    const policy = { attempts: 10, totalMs: 10_000, baseDelayMs: 10, maxDelayMs: 100 };
    for (let retry = 1; retry < 40; retry++) {
      const delay = backoffDelay(policy, retry);
      const ceiling = Math.min(100, 10 * 2 ** (retry - 1));
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe('the cluster view', () => {
  const [first, second] = initialPartitions(7, 2, 1);
  const answer = (version: number, partitions = [first, second]) => ({
    notModified: false as const,
    version,
    partitions,
    nodes: [],
    tables: [{ schema: { name: 't', tableId: 7, hashKey: { name: 'pk', type: 'S' as const }, indexes: [] }, status: 'ACTIVE' as const, createdAt: 0, billingMode: 'PAY_PER_REQUEST' as const, tags: {} }],
  });

  it('takes only newer maps', () => {
    const view = new ClusterView();
    expect(view.apply(answer(3))).toBe(true);
    expect(view.apply(answer(2, [first]))).toBe(false);
    expect(view.apply({ notModified: true, version: 9 })).toBe(false);
    expect(view.map.size).toBe(2);
    expect(view.version).toBe(3);
  });

  it('forgets a removed table and its partitions at once', () => {
    const view = new ClusterView();
    view.apply(answer(1));
    view.removeTable('t');
    expect(view.table('t')).toBeUndefined();
    expect(view.map.partitionsOf(7)).toEqual([]);
  });
});
