/**
 * What idle Raft groups cost: three MultiRaftHosts in this process, each over its own Raft log store
 * (LevelDB, fsync) and a RaftTransport on loopback, host the same `--groups` groups; once every group
 * has a leader and the elections' traffic settled, nothing is proposed for `--seconds`. Reports the
 * CPU of all three nodes (this process) per second and per group, and the Raft messages and batches
 * the transports sent per second, with the machine's load.
 *
 *   npx node scripts/bench-idle-groups.ts [--groups 1000] [--seconds 10] [--heartbeat-tick 2] [--idle-heartbeat-every 1] [--quiesce]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MultiRaftHost, RaftLogStore, RaftTransport } from '@shoal/node';
import type { ReplicaStateMachine } from '@shoal/node';
import type { NodeId } from '@shoal/raft';

const { values } = parseArgs({
  options: {
    groups: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    'heartbeat-tick': { type: 'string', default: '2' },
    'idle-heartbeat-every': { type: 'string', default: '1' },
    quiesce: { type: 'boolean', default: false },
  },
});
const groups = Number(values.groups);
const seconds = Number(values.seconds);
const heartbeatTick = Number(values['heartbeat-tick']);
const idleHeartbeatEvery = Number(values['idle-heartbeat-every']);
const NODES: NodeId[] = [1, 2, 3];
const GROUP_IDS = Array.from({ length: groups }, (_, i) => i + 1);

/** Nothing is proposed: the state machine only has to exist. */
function emptyMachine(): ReplicaStateMachine {
  let applied = 0;
  return {
    apply: (_data, index) => void (applied = index),
    snapshot: () => new Uint8Array(0),
    restore: (_data, index) => void (applied = index),
    appliedIndex: () => applied,
  };
}

interface Node {
  host: MultiRaftHost;
  transport: RaftTransport;
  logStore: RaftLogStore;
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  const root = await mkdtemp(join(os.tmpdir(), 'shoal-bench-idle-'));
  const addresses = new Map<NodeId, string>();
  const hosts = new Map<NodeId, MultiRaftHost>();
  const nodes: Node[] = [];
  try {
    for (const nodeId of NODES) {
      const transport = new RaftTransport({
        nodeId,
        listenAddress: '127.0.0.1:0',
        resolvePeer: (id) => addresses.get(id),
        onMessages: (batch) => hosts.get(nodeId)?.receive(batch),
        onUnreachable: (id, groupIds) => hosts.get(nodeId)?.reportUnreachable(id, groupIds),
        log: () => undefined,
      });
      await transport.start();
      addresses.set(nodeId, transport.address);
      const logStore = await RaftLogStore.open(join(root, `raft-${nodeId}`));
      const host = new MultiRaftHost({
        nodeId,
        logStore,
        sender: transport,
        stateMachine: emptyMachine,
        tickMs: 50,
        electionTick: 20,
        heartbeatTick,
        seed: nodeId,
        commitNotificationHoldMs: 5,
        idleHeartbeatEvery,
        ...(values.quiesce ? { quiescence: { isNodeLive: (id: NodeId) => transport.peerConnected(id) } } : {}),
      });
      host.open();
      hosts.set(nodeId, host);
      for (const groupId of GROUP_IDS) await host.createGroup(groupId, NODES);
      nodes.push({ host, transport, logStore });
    }
    for (const { host } of nodes) host.startTicking();
    const led = (): number => nodes.reduce((sum, { host }) => sum + host.status().filter((s) => s.role === 'leader').length, 0);
    const deadline = Date.now() + 120_000;
    while (led() < groups) {
      if (Date.now() > deadline) throw new Error(`${led()} of ${groups} groups elected a leader within 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The elections' appends, commits and (with --quiesce) quiesce heartbeats settle first.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const sent = () => nodes.reduce((sum, { transport }) => ({ messages: sum.messages + transport.metrics.messagesSent, batches: sum.batches + transport.metrics.batchesSent }), { messages: 0, batches: 0 });
    const before = sent();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const elapsed = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const after = sent();
    const cpuMsPerSecond = (cpu.user + cpu.system) / 1000 / elapsed;
    const leadersLost = nodes.reduce((sum, { host }) => sum + host.stats.leadersLost, 0);
    console.log(`${groups} idle groups on 3 hosts in one process (RaftTransport on loopback), heartbeat every ${heartbeatTick} ticks of 50 ms (every ${heartbeatTick * idleHeartbeatEvery} idle)${values.quiesce ? ', quiescence on' : ''}, ${elapsed.toFixed(1)} s`);
    console.log(`  cpu, 3 nodes            ${cpuMsPerSecond.toFixed(1)} ms/s (user ${(cpu.user / 1000 / elapsed).toFixed(1)} + system ${(cpu.system / 1000 / elapsed).toFixed(1)}), ${((cpuMsPerSecond * 1000) / groups).toFixed(2)} µs/s per group`);
    console.log(`  raft messages sent      ${((after.messages - before.messages) / elapsed).toFixed(0)}/s in ${((after.batches - before.batches) / elapsed).toFixed(0)} batches/s`);
    console.log(`  leaders lost            ${leadersLost} (since the start)`);
    console.log(`  machine                 ${os.cpus().length} cores, load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    for (const { host } of nodes) await host.stop();
    for (const { transport, logStore } of nodes) {
      await transport.close();
      await logStore.close();
    }
    await rm(root, { recursive: true, force: true });
  }
}

await main();
