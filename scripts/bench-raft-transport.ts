/**
 * RaftTransport throughput between two processes on loopback: this process (node 1) sends one MsgApp
 * per group per host tick and flushes, a child (node 2) receives and counts. Reports delivered
 * messages/s and batches/s, drops, bytes, the CPU each side spent per batch (process CPU, all
 * threads), and a chunked snapshot transfer, with the machine's load. `--groups 1 --entry-bytes 20000
 * --tick-ms 2` is close to one partition's appends under the put bench (one MsgApp of ~20 writes).
 *
 *   npx node scripts/bench-raft-transport.ts [--groups 1000] [--seconds 5] [--entry-bytes 100]
 *                                            [--tick-ms 10] [--snapshot-mb 64]
 *
 * --tick-ms 0 ticks as fast as the sender can: an overload, where the receiver falls behind and the
 * bounded per-peer queue drops the oldest messages (reported). Raise --groups at a fixed tick to find
 * the highest rate delivered without drops.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RaftTransport } from '@shoal/node';
import type { Message } from '@shoal/raft';

interface ReceiverReport {
  messages: number;
  batches: number;
  bytes: number;
  firstMs: number;
  lastMs: number;
  snapshotBytes: number;
  /** The receiving process's CPU time so far, in microseconds (all threads). */
  cpu: NodeJS.CpuUsage;
}

/** CPU per batch, user + system (the kernel's part is mostly the loopback socket's). */
const perBatch = (cpu: NodeJS.CpuUsage, batches: number): string => {
  const n = Math.max(1, batches);
  return `${((cpu.user + cpu.system) / n).toFixed(1)} µs (user ${(cpu.user / n).toFixed(1)} + system ${(cpu.system / n).toFixed(1)})`;
};

if (process.argv[2] === '--receive') {
  const report: ReceiverReport = { messages: 0, batches: 0, bytes: 0, firstMs: 0, lastMs: 0, snapshotBytes: 0, cpu: process.cpuUsage() };
  const peers = new Map<number, string>();
  const receiver = new RaftTransport({
    nodeId: 2,
    listenAddress: '127.0.0.1:0',
    resolvePeer: (id) => peers.get(id),
    onMessages: (batch) => {
      const now = performance.now();
      if (report.messages === 0) report.firstMs = now;
      report.lastMs = now;
      for (const { message } of batch) {
        if (message.type === 'MsgSnap') report.snapshotBytes += message.snapshot!.data.length;
        else report.messages += 1;
      }
    },
  });
  await receiver.start();
  process.on('message', (request: { sender?: string; report?: true }) => {
    if (request.sender !== undefined) {
      peers.set(1, request.sender);
      process.send!({ address: receiver.address });
    } else {
      report.batches = receiver.metrics.batchesReceived;
      report.bytes = receiver.metrics.bytesReceived;
      report.cpu = process.cpuUsage();
      process.send!({ report });
    }
  });
  process.on('disconnect', () => void receiver.close().then(() => process.exit(0)));
} else {
  const { values } = parseArgs({
    options: {
      groups: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '5' },
      'entry-bytes': { type: 'string', default: '100' },
      'tick-ms': { type: 'string', default: '10' },
      'snapshot-mb': { type: 'string', default: '64' },
    },
  });
  const groups = Number(values.groups);
  const seconds = Number(values.seconds);
  const entryBytes = Number(values['entry-bytes']);
  const tickMs = Number(values['tick-ms']);
  const snapshotBytes = Number(values['snapshot-mb']) * 1024 * 1024;
  const loadBefore = os.loadavg();

  const child = fork(fileURLToPath(import.meta.url), ['--receive'], { execPath: process.execPath, serialization: 'advanced' });
  const ask = async (request: object): Promise<Record<string, unknown>> => {
    const reply = once(child, 'message');
    child.send(request);
    return (await reply)[0] as Record<string, unknown>;
  };
  let receiverAddress = '';
  let snapshotDone: (ok: boolean) => void = () => {};
  const sender = new RaftTransport({
    nodeId: 1,
    listenAddress: '127.0.0.1:0',
    resolvePeer: (id) => (id === 2 ? receiverAddress : undefined),
    onMessages: () => {},
    onSnapshotSent: (outcome) => snapshotDone(outcome.ok),
  });
  await sender.start();
  receiverAddress = (await ask({ sender: sender.address })).address as string;

  const data = new Uint8Array(entryBytes).fill(7);
  const append = (groupId: number, index: number): Message => ({
    type: 'MsgApp', from: 1, to: 2, term: 1, logTerm: 1, index, commit: index, reject: false, rejectHint: 0,
    entries: [{ term: 1, index: index + 1, type: 'normal', data }],
  });
  const receiverCpuBefore = ((await ask({ report: true })).report as ReceiverReport).cpu;
  const senderCpuBefore = process.cpuUsage();
  const started = performance.now();
  let ticks = 0;
  while (performance.now() - started < seconds * 1000) {
    ticks += 1;
    for (let groupId = 1; groupId <= groups; groupId += 1) sender.send(groupId, append(groupId, ticks));
    sender.flush();
    await new Promise((resolve) => (tickMs === 0 ? setImmediate(resolve) : setTimeout(resolve, tickMs)));
  }
  const sent = sender.metrics.messagesSent;
  // Wait (bounded) for the receiver to take everything sent.
  let report = (await ask({ report: true })).report as ReceiverReport;
  for (let wait = 0; wait < 600 && report.messages < sent; wait += 1) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    report = (await ask({ report: true })).report as ReceiverReport;
  }
  const receiveSeconds = (report.lastMs - report.firstMs) / 1000;
  const senderCpu = process.cpuUsage(senderCpuBefore);
  const receiverCpu = { user: report.cpu.user - receiverCpuBefore.user, system: report.cpu.system - receiverCpuBefore.system };

  const snapshotStarted = performance.now();
  const snapshotOk = new Promise<boolean>((resolve) => {
    snapshotDone = resolve;
  });
  sender.sendSnapshot(1, {
    type: 'MsgSnap', from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(snapshotBytes).fill(9) },
  });
  const ok = await snapshotOk;
  const snapshotSeconds = (performance.now() - snapshotStarted) / 1000;

  const m = sender.metrics;
  console.log(`RaftTransport, node 1 -> node 2 on loopback, ${groups} groups, ${entryBytes}-byte entries, ${seconds} s of ticks every ${tickMs} ms`);
  console.log(`  ticks (flushes)        ${ticks} (${(ticks / seconds).toFixed(0)}/s)`);
  console.log(`  messages sent          ${sent}, received ${report.messages}, dropped queue-full ${m.messagesDroppedQueueFull}, unreachable ${m.messagesDroppedUnreachable}`);
  console.log(`  batches sent           ${m.batchesSent}, received ${report.batches}`);
  console.log(`  cpu per batch          sender ${perBatch(senderCpu, sender.metrics.batchesSent)}, receiver ${perBatch(receiverCpu, report.batches)} (process CPU, all threads)`);
  console.log(`  receive rate           ${(report.messages / receiveSeconds).toFixed(0)} messages/s, ${(report.batches / receiveSeconds).toFixed(0)} batches/s, ${(report.bytes / receiveSeconds / 1e6).toFixed(1)} MB/s`);
  console.log(`  snapshot               ${snapshotBytes / 1024 / 1024} MiB ${ok ? 'sent' : 'FAILED'} in ${snapshotSeconds.toFixed(2)} s (${(snapshotBytes / snapshotSeconds / 1e6).toFixed(1)} MB/s)`);
  console.log(`  machine                ${os.cpus().length} cores, load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await sender.close();
  child.disconnect();
  await once(child, 'exit');
}
