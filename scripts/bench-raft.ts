/**
 * Micro-benchmark of the Raft core: a 3-node group in one process over MemoryStorage, the leader
 * proposing in batches, every node running the Ready loop. Reports committed entries per second
 * and CPU microseconds per entry.
 *
 *   npx node scripts/bench-raft.ts [--seconds 3] [--batch 1024] [--size 128]
 */
import { parseArgs } from 'node:util';
import { MemoryStorage, RawNode, type Message, type NodeId } from '@shoal/raft';
import { testConfig } from '../packages/raft/test/support/cluster.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1024' },
    size: { type: 'string', default: '128' },
  },
});
const seconds = Number(values.seconds);
const batch = Number(values.batch);
const payload = new Uint8Array(Number(values.size)).fill(7);

const ids: NodeId[] = [1, 2, 3];
interface BenchNode {
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}
const nodes = new Map<NodeId, BenchNode>();
for (const id of ids) {
  const storage = new MemoryStorage({ voters: ids });
  const raw = new RawNode(testConfig(id, storage, { seed: id, maxCommittedSizePerReady: 16 * 1024 * 1024 }));
  nodes.set(id, { raw, storage, applied: 0 });
}

let queue: Message[] = [];
/** One round: every node handles its Ready, then queued messages are delivered. */
function round(): boolean {
  let moved = false;
  for (const node of nodes.values()) {
    if (!node.raw.hasReady()) continue;
    moved = true;
    const rd = node.raw.ready();
    node.storage.append(rd.entries);
    if (rd.hardState !== undefined) node.storage.setHardState(rd.hardState);
    for (const m of rd.messages) queue.push(m);
    if (rd.committedEntries.length > 0) node.applied = rd.committedEntries[rd.committedEntries.length - 1].index;
    node.raw.advance(rd);
  }
  const batchOfMessages = queue;
  queue = [];
  for (const m of batchOfMessages) nodes.get(m.to)!.raw.step(m);
  return moved || batchOfMessages.length > 0;
}

nodes.get(1)!.raw.campaign();
for (let i = 0; i < 20 && round(); i++);
const leader = nodes.get(1)!;
if (leader.raw.status().softState.role !== 'leader') throw new Error('node 1 did not become leader');

const startApplied = leader.applied;
const cpuStart = process.cpuUsage();
const wallStart = performance.now();
let proposed = 0;
let rounds = 0;
while (performance.now() - wallStart < seconds * 1000) {
  for (let i = 0; i < batch; i++) leader.raw.propose(payload);
  proposed += batch;
  // Keep the pipeline moving: a few rounds per batch, new batches overlap with replication.
  for (let i = 0; i < 3; i++) round();
  rounds++;
  if (rounds % 64 === 0) {
    // Compact what everyone has applied, as a host would after snapshotting.
    for (const node of nodes.values()) {
      const upTo = Math.min(node.applied, ...[...nodes.values()].map((n) => n.applied)) - 1;
      if (upTo > node.storage.firstIndex()) node.storage.compact(upTo);
    }
  }
}
for (let i = 0; i < 50 && round(); i++);
const wallMs = performance.now() - wallStart;
const cpu = process.cpuUsage(cpuStart);
const committed = leader.applied - startApplied;
const cpuMicros = cpu.user + cpu.system;
console.log(
  JSON.stringify(
    {
      nodes: ids.length,
      batch,
      payloadBytes: payload.length,
      proposed,
      committed,
      seconds: +(wallMs / 1000).toFixed(2),
      committedPerSecond: Math.round(committed / (wallMs / 1000)),
      cpuMicrosPerEntry: +(cpuMicros / committed).toFixed(2),
    },
    null,
    2,
  ),
);
