/**
 * Read-your-writes on a storage node: an acknowledged write answers the applied index reads of its
 * leader see, and an eventual read naming that index (min_applied_index) on a follower whose apply is
 * held behind waits for it on the replica's apply progress, then answers the new value; past its
 * bound it answers ReplicaBehind. Three nodes in this process (hosts over a memory network, from
 * which a node is taken off to hold it behind), each serving PartitionService on 127.0.0.1 twice:
 * with a long wait and with a short one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type AttributeValue, type PartitionDescriptor, type PartitionWrite, type TableSchema } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { PartitionReplica, StorageNodeServer, type MultiRaftHost } from '@shoal/node';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Server,
  Status,
  createClient,
  getManyRequestToWire,
  getManyResultsFromWire,
  getRequestToWire,
  getResultFromWire,
  listen,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  shutdown,
  writeManyRequestToWire,
  writeManyResultsFromWire,
  writeRequestToWire,
  type ClientOf,
  type PartitionReadOptions,
  type RoutedTo,
} from '@shoal/proto';
import { eventually } from './fixtures/eventually.ts';
import { agreedLeader } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';
import { oneReplica, startPartitionMember, stopPartitionMember, type PartitionMember } from './fixtures/partition-member.ts';

const NODES: NodeId[] = [1, 2, 3];
const BEHIND: NodeId = 3;
const TABLE: TableSchema = { name: 'orders', tableId: 5, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const PARTITION: PartitionDescriptor = { ...initialPartitions(TABLE.tableId, 1, 1)[0], replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' as const })) };
const GROUP = PARTITION.id;
const TARGET: RoutedTo = { partitionId: BigInt(GROUP), epoch: BigInt(PARTITION.epoch) };
/** Long enough that only the held traffic's release ends a wait; short enough to end one at once. */
const PATIENT_WAIT_MS = 60_000;
const HASTY_WAIT_MS = 1;
/** Polls of 25 ms: up to 20 s for an election or an apply on a loaded machine. */
const SETTLE_ATTEMPTS = 800;
const S = (value: string): AttributeValue => ({ S: value });
const put = (pk: string, v: string): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), v: S(v) } }] });

type PartitionRpc = ClientOf<typeof PartitionService>;

interface Served {
  grpc: Server;
  server: StorageNodeServer;
  rpc: PartitionRpc;
}

type Member = PartitionMember & {
  replica: PartitionReplica;
  patient: Served;
  hasty: Served;
};

const network = new MemoryNetwork();
const members: Member[] = [];
let root = '';

async function serve(host: MultiRaftHost, replica: PartitionReplica, replicaWaitMs: number): Promise<Served> {
  const grpc = new Server();
  const server = new StorageNodeServer({
    server: grpc,
    host,
    replicaOf: (id) => (id === GROUP ? replica : undefined),
    descriptorOf: (id) => (id === GROUP ? PARTITION : undefined),
    log: { warn: () => undefined },
    replicaWaitMs,
  });
  const port = await listen(grpc, '127.0.0.1', 0);
  return { grpc, server, rpc: createClient(PartitionService, `127.0.0.1:${port}`) };
}

async function startMember(nodeId: NodeId): Promise<Member> {
  // An election timeout of a second or more: holding a follower's traffic a while starts none.
  const started = await startPartitionMember(network, nodeId, join(root, `node-${nodeId}`), { seed: nodeId, host: { tickMs: 20, electionTick: 50, heartbeatTick: 2 }, ...oneReplica(GROUP) });
  return { ...started, patient: await serve(started.host, started.replica, PATIENT_WAIT_MS), hasty: await serve(started.host, started.replica, HASTY_WAIT_MS) };
}

const member = (nodeId: NodeId): Member => members.find((m) => m.nodeId === nodeId)!;
const leaderId = (): NodeId | undefined => agreedLeader(members, GROUP)?.nodeId;
const leader = (): Member => member(leaderId()!);
/** Holds a node's apply behind: the Raft traffic to it is dropped (the leader sends it again once released). */
const hold = (nodeId: NodeId): boolean => network.hosts.delete(nodeId);
const release = (nodeId: NodeId): void => void network.hosts.set(nodeId, member(nodeId).host);

async function write(pk: string, v: string): Promise<bigint> {
  const response = await leader().patient.rpc.write(writeRequestToWire(TARGET, put(pk, v)));
  expect(response.applied).toBe(true);
  return response.appliedIndex;
}

async function get(rpc: PartitionRpc, pk: string, options: PartitionReadOptions): Promise<string | undefined> {
  const found = getResultFromWire(await rpc.get(getRequestToWire(TARGET, { table: TABLE, key: { pk: S(pk) } }, options)));
  return (found?.item.v as { S: string } | undefined)?.S;
}

async function failure(call: Promise<unknown>): Promise<RpcError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(error)}`);
  return error;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'shoal-read-your-writes-'));
  for (const nodeId of NODES) members.push(await startMember(nodeId));
  for (const m of members) await m.host.createGroup(GROUP, NODES);
  for (const m of members) m.host.startTicking();
  await eventually(() => leaderId(), 'a leader', SETTLE_ATTEMPTS);
  // The held node must be a follower.
  if (leaderId() === BEHIND) {
    leader().host.transferLeadership(GROUP, 1);
    await eventually(() => (leaderId() !== undefined && leaderId() !== BEHIND ? true : undefined), 'a leader other than the held node', SETTLE_ATTEMPTS);
  }
}, 60_000);

afterAll(async () => {
  for (const m of members) {
    for (const served of [m.patient, m.hasty]) {
      served.rpc.close();
      await shutdown(served.grpc, 1_000);
    }
    await stopPartitionMember(network, m);
  }
  if (root !== '') await rm(root, { recursive: true, force: true });
}, 30_000);

describe('read-your-writes on a storage node', () => {
  it('answers each acknowledged write with the applied index reads of its leader see, growing', { timeout: 30_000 }, async () => {
    const first = await write('a', '1');
    expect(first).toBeGreaterThan(0n);
    expect(BigInt(leader().replica.visibleIndex())).toBeGreaterThanOrEqual(first);
    const second = await write('a', '2');
    expect(second).toBeGreaterThan(first);
    // Coalesced writes are one entry: each result carries its index.
    const many = writeManyResultsFromWire(await leader().patient.rpc.writeMany(writeManyRequestToWire(TARGET, [put('b', '1'), put('c', '1')])), 2);
    const indexes = many.map((result) => (result instanceof RpcError ? 0n : result.appliedIndex));
    expect(indexes[0]).toBeGreaterThan(second);
    expect(indexes[1]).toBe(indexes[0]);
  });

  it('makes an eventual read on a follower held behind wait for the index asked, then answer the new value', { timeout: 30_000 }, async () => {
    const before = await write('k', 'old');
    const follower = member(BEHIND);
    await eventually(() => (follower.replica.visibleIndex() >= Number(before) ? true : undefined), 'the follower applying the first write', SETTLE_ATTEMPTS);
    hold(BEHIND);
    let acknowledged = 0n;
    let read: Promise<string | undefined> | undefined;
    try {
      acknowledged = await write('k', 'new');
      // Without an index asked, the follower answers what it applied: the old value.
      expect(await get(follower.patient.rpc, 'k', { consistent: false })).toBe('old');
      expect(follower.replica.visibleIndex()).toBeLessThan(Number(acknowledged));

      let answered = false;
      read = get(follower.patient.rpc, 'k', { consistent: false, minAppliedIndex: acknowledged }).finally(() => {
        answered = true;
      });
      await eventually(() => (follower.patient.server.stats.replicaWaits === 1 ? true : undefined), 'the read waiting on the follower', SETTLE_ATTEMPTS);
      expect(answered).toBe(false);
    } finally {
      release(BEHIND);
    }
    expect(await read).toBe('new');
    expect(follower.patient.server.stats.replicaBehind).toBe(0);
    expect(follower.replica.visibleIndex()).toBeGreaterThanOrEqual(Number(acknowledged));
  });

  it('answers ReplicaBehind for Get, GetMany and ReadRange once the wait is over, and the leader at once', { timeout: 30_000 }, async () => {
    const follower = member(BEHIND);
    hold(BEHIND);
    try {
      const acknowledged = await write('r', 'v');
      const asked: PartitionReadOptions = { consistent: false, minAppliedIndex: acknowledged };
      const refusals = [
        await failure(get(follower.hasty.rpc, 'r', asked)),
        await failure(follower.hasty.rpc.getMany(getManyRequestToWire(TARGET, [{ table: TABLE, key: { pk: S('r') } }], asked))),
        await failure(follower.hasty.rpc.readRange(rangeReadRequestToWire(TARGET, { table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' }, asked))),
      ];
      for (const refusal of refusals) {
        expect(refusal.code).toBe(Status.FAILED_PRECONDITION);
        const detail = refusal.detail(ErrorDetailSchema)?.kind;
        expect(detail?.case).toBe('replicaBehind');
        if (detail?.case !== 'replicaBehind') continue;
        expect(detail.value.partitionId).toBe(BigInt(GROUP));
        expect(detail.value.minAppliedIndex).toBe(acknowledged);
        expect(detail.value.appliedIndex).toBeLessThan(acknowledged);
      }
      expect(follower.hasty.server.stats.replicaBehind).toBe(3);

      // The leader answered the write after applying it: it never waits for the index it answered.
      const { hasty } = leader();
      expect(await get(hasty.rpc, 'r', asked)).toBe('v');
      const many = getManyResultsFromWire(await hasty.rpc.getMany(getManyRequestToWire(TARGET, [{ table: TABLE, key: { pk: S('r') } }], asked)), 1);
      expect(many[0] instanceof RpcError ? undefined : many[0]?.item.v).toEqual(S('v'));
      const range = rangeReadResultFromWire(await hasty.rpc.readRange(rangeReadRequestToWire(TARGET, { table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' }, asked)));
      expect(range.items.map((item) => item.pk)).toContainEqual(S('r'));
      expect(hasty.server.stats.replicaWaits).toBe(0);
    } finally {
      release(BEHIND);
    }
  });

  it("ends a wait at the call's deadline, long before the replica's own bound", { timeout: 30_000 }, async () => {
    const follower = member(BEHIND);
    hold(BEHIND);
    try {
      const acknowledged = await write('d', 'v');
      const behindBefore = follower.patient.server.stats.replicaBehind;
      const call = follower.patient.rpc.get(getRequestToWire(TARGET, { table: TABLE, key: { pk: S('d') } }, { consistent: false, minAppliedIndex: acknowledged }), { timeoutMs: 200 });
      expect((await failure(call)).code).toBe(Status.DEADLINE_EXCEEDED);
      // The node stops waiting too (its bound here is a minute): the wait counts as refused.
      await eventually(() => (follower.patient.server.stats.replicaBehind === behindBefore + 1 ? true : undefined), 'the node giving up the wait', SETTLE_ATTEMPTS);
    } finally {
      release(BEHIND);
    }
  });
});
