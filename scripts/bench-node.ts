/**
 * The storage node's replicated write path without gRPC: three MultiRaftHosts in one process (an
 * in-memory network delivering each flush on a later turn of the event loop), each over a real Raft
 * log store (LevelDB, fsync) and a real node store (LevelDB, no fsync) with a PartitionReplica per
 * group, the leaders proposing 1 KB PutItem writes with `--concurrency` in flight per group. Reports
 * writes/s, CPU microseconds per write (all three hosts: this process), p50/p99 and what the rounds
 * shared: writes per Raft log batch and per store batch on the leader.
 *
 * `--coalesce N`: each proposal carries N independent writes as one entry (proposePartitionWrites, what
 * a router's WriteMany becomes); N = 1 proposes single writes. Writes in flight: concurrency x N.
 *
 *   npx node scripts/bench-node.ts [--groups 1] [--concurrency 64] [--coalesce 1] [--seconds 5] [--item-size 1024]
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { PartitionWrite, TableSchema } from '@shoal/model';
import { MultiRaftHost, PartitionReplica, RaftLogStore, proposePartitionWrite, proposePartitionWrites, type GroupMessage, type RaftMessageSender } from '@shoal/node';
import type { NodeId } from '@shoal/raft';
import { openLocalStore, type LocalStore } from '@shoal/storage';

const { values } = parseArgs({
  options: {
    groups: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '64' },
    coalesce: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' },
    'item-size': { type: 'string', default: '1024' },
  },
});
const groups = Number(values.groups);
const concurrency = Number(values.concurrency);
const coalesce = Number(values.coalesce);
const seconds = Number(values.seconds);
const itemSize = Number(values['item-size']);

const TABLE: TableSchema = { name: 'bench', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const NODES: NodeId[] = [1, 2, 3];
const GROUP_IDS = Array.from({ length: groups }, (_, i) => i + 1);

interface Node {
  nodeId: NodeId;
  logStore: RaftLogStore;
  local: LocalStore;
  host: MultiRaftHost;
}

const hosts = new Map<NodeId, MultiRaftHost>();

/** Each flush hands every peer its messages on a later turn of the event loop, as a socket would. */
function sender(): RaftMessageSender {
  let queued: GroupMessage[] = [];
  return {
    send: (groupId, message) => void queued.push({ groupId, message }),
    flush: () => {
      const byPeer = new Map<NodeId, GroupMessage[]>();
      for (const item of queued) byPeer.set(item.message.to, [...(byPeer.get(item.message.to) ?? []), item]);
      queued = [];
      for (const [to, batch] of byPeer) setImmediate(() => hosts.get(to)?.receive(batch));
    },
  };
}

async function startNode(root: string, nodeId: NodeId): Promise<Node> {
  const logStore = await RaftLogStore.open(join(root, `raft-${nodeId}`));
  const local = await openLocalStore({ dataDir: join(root, `data-${nodeId}`) });
  const replicas = new Map<number, PartitionReplica>();
  for (const groupId of GROUP_IDS) replicas.set(groupId, await PartitionReplica.open(groupId, local.partitions));
  const host = new MultiRaftHost({
    nodeId,
    logStore,
    sender: sender(),
    stateMachine: (groupId) => replicas.get(groupId)!,
    tickMs: 50,
    electionTick: 10,
    heartbeatTick: 2,
    seed: nodeId,
  });
  host.open();
  hosts.set(nodeId, host);
  for (const groupId of GROUP_IDS) await host.createGroup(groupId, NODES);
  host.startTicking();
  return { nodeId, logStore, local, host };
}

/**
 * The main thread's CPU µs and minor page faults so far (Linux; undefined elsewhere). A page fault
 * costs ~17 µs on the 2-core VM the benches run on (first touch of a fresh page), so V8 heap pages
 * allocated and released again show here before anywhere else.
 */
function mainThread(): { cpuMicros: number; faults: number } | undefined {
  try {
    const task = `/proc/self/task/${process.pid}`;
    const fields = readFileSync(`${task}/stat`, 'utf8').split(') ')[1].split(' ');
    return { cpuMicros: Number(readFileSync(`${task}/schedstat`, 'utf8').split(' ')[0]) / 1000, faults: Number(fields[7]) };
  } catch {
    return undefined;
  }
}

const percentile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  const root = await mkdtemp(join(os.tmpdir(), 'shoal-bench-node-'));
  const nodes = await Promise.all(NODES.map((nodeId) => startNode(root, nodeId)));
  try {
    const leaderOf = (groupId: number): Node | undefined => nodes.find((n) => n.host.status().find((s) => s.groupId === groupId)?.role === 'leader');
    const deadline = Date.now() + 30_000;
    while (!GROUP_IDS.every((g) => leaderOf(g) !== undefined)) {
      if (Date.now() > deadline) throw new Error('no leader within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const filler = 'x'.repeat(Math.max(0, itemSize - 40));
    const write = (i: number): PartitionWrite => ({
      operations: [{ table: TABLE, kind: 'Put', key: { pk: { S: `key-${i % 10_000}` } }, item: { pk: { S: `key-${i % 10_000}` }, payload: { S: filler } } }],
    });
    let next = 0;
    let writes = 0;
    const latencies: number[] = [];
    const measureFrom = performance.now() + 1_000; // a second of warm-up
    const endAt = measureFrom + seconds * 1000;
    let cpuAtStart: NodeJS.CpuUsage | undefined;
    let mainAtStart: ReturnType<typeof mainThread>;
    const counters = () => {
      const leaders = GROUP_IDS.map((g) => leaderOf(g)!);
      return {
        logBatches: leaders.reduce((sum, n) => sum + n.logStore.stats.batches, 0),
        storeBatches: leaders.reduce((sum, n) => sum + n.local.partitions.batchesWritten(), 0),
      };
    };
    let atStart = counters();
    const worker = async (groupId: number): Promise<void> => {
      while (performance.now() < endAt) {
        const started = performance.now();
        const leader = leaderOf(groupId);
        if (leader === undefined) throw new Error(`group ${groupId} lost its leader`);
        if (coalesce === 1) await proposePartitionWrite(leader.host, groupId, write(next++));
        else await proposePartitionWrites(leader.host, groupId, Array.from({ length: coalesce }, () => write(next++)));
        const now = performance.now();
        if (started >= measureFrom && now <= endAt) {
          if (cpuAtStart === undefined) {
            cpuAtStart = process.cpuUsage();
            mainAtStart = mainThread();
          }
          writes += coalesce;
          for (let i = 0; i < coalesce; i++) latencies.push(now - started);
        }
        if (cpuAtStart === undefined && now >= measureFrom) atStart = counters();
      }
    };
    await Promise.all(GROUP_IDS.flatMap((groupId) => Array.from({ length: concurrency }, () => worker(groupId))));
    const cpu = process.cpuUsage(cpuAtStart);
    const mainAtEnd = mainThread();
    const atEnd = counters();
    latencies.sort((a, b) => a - b);
    const perWrite = (cpu.user + cpu.system) / writes;
    console.log(`node ${process.version}, ${os.cpus().length} cpus, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`${groups} group(s) x ${concurrency} in flight${coalesce === 1 ? '' : ` x ${coalesce} writes per entry`}, ${itemSize} B items, ${seconds} s`);
    console.log(
      `${(writes / seconds).toFixed(0)} writes/s, ${perWrite.toFixed(0)} µs CPU per write (3 hosts), p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms, ` +
        `writes per leader log batch ${(writes / Math.max(1, atEnd.logBatches - atStart.logBatches)).toFixed(1)}, per leader store batch ${(writes / Math.max(1, atEnd.storeBatches - atStart.storeBatches)).toFixed(1)}`,
    );
    if (mainAtStart !== undefined && mainAtEnd !== undefined) {
      const faults = mainAtEnd.faults - mainAtStart.faults;
      console.log(`main thread: ${((mainAtEnd.cpuMicros - mainAtStart.cpuMicros) / writes).toFixed(0)} µs CPU per write, ${(faults / writes).toFixed(2)} page faults per write (${(faults / seconds).toFixed(0)}/s)`);
    }
  } finally {
    for (const node of nodes) await node.host.stop();
    for (const node of nodes) {
      await node.logStore.close();
      await node.local.close();
    }
    await rm(root, { recursive: true, force: true });
  }
}

await main();
