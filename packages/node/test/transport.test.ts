/**
 * The Raft transport between real processes on loopback: three storage nodes' transports in three
 * child processes (fixtures/transport-node.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { GroupMessageListSchema, RaftTransportService, RpcError, Status, createClient, messageToWire } from '@shoal/proto';
import type { Stats } from './fixtures/transport-node.ts';
import { sha256, snapshotData } from './fixtures/transport-data.ts';
import { eventually } from './fixtures/eventually.ts';
import { TransportChild, startCluster } from './fixtures/transport-harness.ts';

const GROUPS = 100;

async function* streamOf<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

/** Messages `to` received from `from`, over all groups, once each group's stream reached `perGroup`. */
function complete(stats: Stats, from: number, perGroup: number): boolean {
  for (let group = 1; group <= GROUPS; group += 1) {
    if ((stats.streams[`${from}/${group}`]?.count ?? 0) < perGroup) return false;
  }
  return true;
}

describe('RaftTransport between three processes', () => {
  let nodes: TransportChild[] = [];

  beforeAll(async () => {
    nodes = await startCluster([1, 2, 3], true);
  });

  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.kill()));
  });

  it('delivers 10,000+ messages across 100 groups in per-(group, sender) order, one batch per flush per peer', async () => {
    const ticks = 17; // 3 senders x 2 peers x 100 groups x 17 ticks = 10,200 messages
    await Promise.all(nodes.map((node) => node.request({ op: 'traffic', to: nodes.filter((n) => n !== node).map((n) => n.nodeId), groups: GROUPS, ticks, entryBytes: 64 })));
    for (const receiver of nodes) {
      const stats = await eventually(async () => {
        const s = await receiver.stats();
        return nodes.every((sender) => sender === receiver || complete(s, sender.nodeId, ticks)) ? s : undefined;
      }, `node ${receiver.nodeId} to receive everything`);
      for (const sender of nodes) {
        if (sender === receiver) continue;
        for (let group = 1; group <= GROUPS; group += 1) {
          expect(stats.streams[`${sender.nodeId}/${group}`]).toEqual({ count: ticks, lastIndex: ticks, outOfOrder: 0 });
        }
        // Each flush carried this sender's 100 messages for this receiver in one batch.
        expect(stats.batchesFrom[sender.nodeId]).toBe(ticks);
      }
      expect(stats.metrics.messagesReceived).toBe(2 * GROUPS * ticks);
      expect(stats.metrics.batchesReceived).toBe(2 * ticks);
      expect(stats.metrics.batchesRefused).toBe(0);
    }
    const sent = await Promise.all(nodes.map((node) => node.stats()));
    for (const s of sent) {
      expect(s.metrics.messagesSent).toBe(2 * GROUPS * ticks);
      expect(s.metrics.batchesSent).toBe(2 * ticks);
      expect(s.metrics.messagesDroppedUnreachable + s.metrics.messagesDroppedQueueFull).toBe(0);
    }
    // Bytes are counted the same (exact encoded sizes) on both ends.
    const received = await Promise.all(nodes.map((node) => node.stats()));
    expect(received.reduce((sum, s) => sum + s.metrics.bytesReceived, 0)).toBe(sent.reduce((sum, s) => sum + s.metrics.bytesSent, 0));
  });

  it('refuses and logs batches from an unknown node or meant for another node, without disturbing other peers', async () => {
    const [, node2, node3] = nodes as [TransportChild, TransportChild, TransportChild];
    const client = createClient(RaftTransportService, node2.address);
    const message = messageToWire({ type: 'MsgHeartbeat', from: 99, to: 2, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 });
    const attempt = async (fromNode: bigint, toNode: bigint): Promise<RpcError> => {
      try {
        for await (const response of client.stream(streamOf([{ fromNode, toNode, messages: [{ groupId: 1n, message }] }]))) void response;
      } catch (error) {
        if (error instanceof RpcError) return error;
        throw error;
      }
      throw new Error('the batch was accepted');
    };
    const before = await node2.stats();
    // Interleave the refused streams with regular traffic from node 3.
    const traffic = node3.request({ op: 'traffic', to: [2], groups: GROUPS, ticks: 5, entryBytes: 16 });
    const unknown = await attempt(99n, 2n);
    const misaddressed = await attempt(3n, 7n);
    await traffic;
    client.close();
    expect(unknown.code).toBe(Status.PERMISSION_DENIED);
    expect(unknown.message).toBe('batch from unknown node 99 refused by node 2');
    expect(misaddressed.code).toBe(Status.FAILED_PRECONDITION);
    expect(misaddressed.message).toBe('batch for node 7 reached node 2');

    const after = await eventually(async () => {
      const s = await node2.stats();
      return complete(s, 3, (before.streams['3/1']?.count ?? 0) + 5) ? s : undefined;
    }, 'node 3 traffic to reach node 2');
    for (let group = 1; group <= GROUPS; group += 1) expect(after.streams[`3/${group}`]?.outOfOrder).toBe(0);
    expect(after.metrics.batchesRefused - before.metrics.batchesRefused).toBe(2);
    const refusals = after.logs.filter((entry) => entry.event === 'batch_refused');
    expect(refusals.map(({ level, event, node, from, to, code }) => ({ level, event, node, from, to, code }))).toEqual([
      { level: 'warn', event: 'batch_refused', node: 2, from: '99', to: '2', code: 'PERMISSION_DENIED' },
      { level: 'warn', event: 'batch_refused', node: 2, from: '3', to: '7', code: 'FAILED_PRECONDITION' },
    ]);
    // Node 3's own stream to node 2 never failed.
    expect((await node3.stats()).metrics.streamFailures).toBe(0);
  });

  it('refuses a batch holding a message the core cannot take, in either form', async () => {
    const [node1] = nodes as [TransportChild];
    const message = messageToWire({ type: 'MsgHeartbeat', from: 2, to: 1, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 });
    message.term = 2n ** 60n;
    const messages = [{ groupId: 1n, message }];
    const packedMessages = toBinary(GroupMessageListSchema, create(GroupMessageListSchema, { messages }));
    for (const batch of [{ fromNode: 2n, toNode: 1n, messages }, { fromNode: 2n, toNode: 1n, packedMessages }]) {
      const client = createClient(RaftTransportService, node1.address);
      const refusal = await (async () => {
        try {
          for await (const response of client.stream(streamOf([batch]))) void response;
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      client.close();
      expect(refusal).toBeInstanceOf(RpcError);
      expect((refusal as RpcError).code).toBe(Status.INVALID_ARGUMENT);
      expect((refusal as RpcError).message).toBe(`invalid Raft message: term ${2n ** 60n} exceeds 2^53`);
    }
  });

  it('transfers a 20 MB snapshot in chunks and reassembles it byte for byte', async () => {
    const [node1, node2] = nodes as [TransportChild, TransportChild];
    const size = 20 * 1024 * 1024;
    const before = await node2.stats();
    await node1.request({ op: 'snapshot', to: 2, groupId: 42, size, seed: 7 });
    const outcome = await eventually(async () => (await node1.stats()).snapshotOutcomes[0], 'the snapshot outcome');
    expect(outcome).toEqual({ groupId: 42, to: 2, ok: true });
    const after = await node2.stats();
    expect(after.snapshots).toEqual([{ from: 1, groupId: 42, index: 100, size, sha256: sha256(snapshotData(size, 7)) }]);
    expect(after.metrics.snapshotChunksReceived - before.metrics.snapshotChunksReceived).toBe(20);
    expect(after.metrics.snapshotBytesReceived).toBe(size);
  });

  it('partitions one way with the fault hook: 1 → 2 lost, 2 → 1 delivered, then healed', async () => {
    const [node1, node2] = nodes as [TransportChild, TransportChild];
    const base1 = await node1.stats();
    const base2 = await node2.stats();
    const count = (s: Stats, from: number): number => s.streams[`${from}/1`]?.count ?? 0;
    await node1.request({ op: 'partition', peer: 2, direction: 'outbound' });
    await node1.request({ op: 'traffic', to: [2], groups: GROUPS, ticks: 3, entryBytes: 8 });
    await node2.request({ op: 'traffic', to: [1], groups: GROUPS, ticks: 3, entryBytes: 8 });
    const at1 = await eventually(async () => {
      const s = await node1.stats();
      return complete(s, 2, count(base1, 2) + 3) ? s : undefined;
    }, 'node 2 traffic to reach node 1');
    expect(at1.metrics.messagesDroppedByFault - base1.metrics.messagesDroppedByFault).toBe(3 * GROUPS);

    await node1.request({ op: 'heal' });
    await node1.request({ op: 'traffic', to: [2], groups: GROUPS, ticks: 2, entryBytes: 8 });
    const at2 = await eventually(async () => {
      const s = await node2.stats();
      return complete(s, 1, count(base2, 1) + 2) ? s : undefined;
    }, 'node 1 traffic to reach node 2 after healing');
    // Exactly the two ticks after healing arrived; the three partitioned ones never did.
    for (let group = 1; group <= GROUPS; group += 1) {
      const stream = at2.streams[`1/${group}`]!;
      expect(stream.count - (base2.streams[`1/${group}`]?.count ?? 0)).toBe(2);
      expect(stream.lastIndex - (base2.streams[`1/${group}`]?.lastIndex ?? 0)).toBe(5);
      expect(stream.outOfOrder).toBe(0);
    }
  });

  // Last: it replaces node 3 by a new process (a spawn, hence the longer timeout).
  it('drops and reports sends to a killed peer during the outage and resumes after its restart', { timeout: 60_000 }, async () => {
    const [node1, , node3] = nodes as [TransportChild, TransportChild, TransportChild];
    const before = await node3.stats();
    await node1.request({ op: 'traffic', to: [3], groups: GROUPS, ticks: 1, entryBytes: 8 });
    await eventually(async () => (complete(await node3.stats(), 1, (before.streams['1/1']?.count ?? 0) + 1) ? true : undefined), 'traffic before the kill');

    await node3.kill();
    // Keep ticking until the loss is noticed, every group has been reported unreachable, and a flush
    // has found the peer down (backing off) and dropped its messages.
    const reported = await eventually(async () => {
      await node1.request({ op: 'traffic', to: [3], groups: GROUPS, ticks: 1, entryBytes: 8 });
      const s = await node1.stats();
      return new Set(s.unreachable['3'] ?? []).size === GROUPS && s.metrics.messagesDroppedUnreachable > 0 ? s : undefined;
    }, 'node 3 to be reported unreachable');
    expect(reported.metrics.streamFailures).toBeGreaterThan(0);
    expect(reported.logs.some((entry) => entry.event === 'stream_failed' && entry.peer === 3)).toBe(true);

    const restarted = new TransportChild(3);
    nodes.push(restarted);
    await restarted.start([[1, node1.address]]);
    await node1.request({ op: 'setPeer', nodeId: 3, address: restarted.address });
    const resumed = await eventually(async () => {
      await node1.request({ op: 'traffic', to: [3], groups: GROUPS, ticks: 1, entryBytes: 8 });
      const s = await restarted.stats();
      return complete(s, 1, 1) ? s : undefined;
    }, 'traffic to resume after the restart');
    for (let group = 1; group <= GROUPS; group += 1) expect(resumed.streams[`1/${group}`]?.outOfOrder).toBe(0);
  });
});
