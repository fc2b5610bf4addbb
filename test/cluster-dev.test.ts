import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answersReady } from '@shoal/proto';
import { eventually, killStartedProcesses, metricValue, runShoal, scrapeMetrics, spawnShoal, waitForOutput } from './helpers/cluster.ts';
import type { ShoalProcess } from './helpers/cluster.ts';
import { createTable, keyedBy } from './helpers/item-assertions.ts';
import { sdkClients } from './helpers/shoal.ts';

/** `shoal dev` as a cluster: 3 `shoal node` processes and a `shoal router`, watched by one parent. */

const START_TIMEOUT_MS = 150_000;
/** A start of 4 processes on a loaded machine, requests, and a stop. */
const TEST_TIMEOUT_MS = 240_000;

interface DevProcess extends ShoalProcess {
  /** Role, id, address, ops port and pid of each child, from the lines printed once ready. */
  members: { role: string; id: number; address: string; opsPort: number; pid: number }[];
  endpoint: string;
}

const childPids = new Set<number>();
let dataRoot: string;
/** Where the first cluster's nodes listened: a restart on the same data must find them there again. */
let firstNodeAddresses: string[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startDev(dataDir: string, extra: string[] = []): Promise<DevProcess> {
  // Detached: its own process group, so that afterAll can kill it and every child it started.
  const dev = spawnShoal(['dev', '--port', '0', '--data-dir', dataDir, ...extra], { detached: true });
  await waitForOutput(dev, /ready/, 'shoal dev ready', START_TIMEOUT_MS, dev.stdout);
  const stdout = dev.stdout();
  const members = [...stdout.matchAll(/^(node|router)\s+(\d+)\s+(\S+)\s+ops 127\.0\.0\.1:(\d+)\s+pid (\d+)$/gm)].map((match) => ({
    role: match[1],
    id: Number(match[2]),
    address: match[3],
    opsPort: Number(match[4]),
    pid: Number(match[5]),
  }));
  for (const member of members) childPids.add(member.pid);
  const endpoint = /ready: DynamoDB endpoint (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
  if (endpoint === undefined) throw new Error(`no endpoint in:\n${stdout}`);
  return { ...dev, members, endpoint };
}

beforeAll(async () => {
  dataRoot = await mkdtemp(join(tmpdir(), 'shoal-dev-'));
});

afterAll(async () => {
  // `shoal dev` runs in a group of its own, with its children: killed with them.
  killStartedProcesses();
  for (const pid of childPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await rm(dataRoot, { recursive: true, force: true });
});

/** The first start's checks; ends with the SIGINT that stops every child. */
async function checkFirstStart(dev: DevProcess, dataDir: string): Promise<void> {
  expect(dev.members.map((member) => `${member.role} ${member.id}`)).toEqual(['node 1', 'node 2', 'node 3', 'router 1']);
  expect(dev.stdout().trimEnd().split('\n')).toHaveLength(5);
  for (const member of dev.members) {
    expect(alive(member.pid)).toBe(true);
    expect(await answersReady('127.0.0.1', member.opsPort)).toBe(true);
  }
  expect(dev.members.find((member) => member.role === 'router')?.address).toBe(dev.endpoint);
  firstNodeAddresses = dev.members.filter((member) => member.role === 'node').map((member) => member.address);

  const { client, doc } = sdkClients(dev.endpoint);
  await createTable(client, { TableName: 'dev', ...keyedBy(['id', 'S']) });
  await doc.send(new PutCommand({ TableName: 'dev', Item: { id: 'a', n: 1 } }));
  expect((await doc.send(new GetCommand({ TableName: 'dev', Key: { id: 'a' }, ConsistentRead: true }))).Item).toEqual({ id: 'a', n: 1 });
  client.destroy();

  // `shoal admin status` finds the cluster from the data directory alone.
  const status = await runShoal(['admin', 'status', '--data-dir', dataDir, '--json']);
  expect(status.code).toBe(0);
  const summary = JSON.parse(status.stdout) as {
    nodes: { id: number; state: string }[];
    partitions: { table: string; leader?: number; replicas: string[] }[];
  };
  expect(summary.nodes.map((node) => [node.id, node.state])).toEqual([[1, 'up'], [2, 'up'], [3, 'up']]);
  const partition = summary.partitions.find((row) => row.table === 'dev');
  expect(partition?.replicas.toSorted()).toEqual(['1', '2', '3']);
  // A leader being moved (the placement driver balances them) or not reported yet shows as '-' for a moment.
  const partitionRow = /^ +\d+ +dev +start\.\.end +\d+ +\d+ +[123],[123],[123] +\d+ +\d+$/m;
  let text = '';
  await eventually('admin status names the partition\'s leader', async () => {
    text = (await runShoal(['admin', 'status', '--data-dir', dataDir])).stdout;
    return partitionRow.test(text);
  }, 30_000, 500);
  expect(text).toMatch(/^NODE +ADDRESS +STATE +REPLICAS +HOSTED +LEADERS +HEARTBEAT$/m);

  // Every process serves its metrics.
  const routerOps = dev.members.find((member) => member.role === 'router')!.opsPort;
  const routerMetrics = await scrapeMetrics(routerOps);
  // The put and the get: timed by the router, sent to the nodes by its cluster client.
  expect(metricValue(routerMetrics, 'shoal_router_partition_request_duration_seconds_count')).toBeGreaterThanOrEqual(2);
  expect(metricValue(routerMetrics, 'shoal_router_node_requests_total')).toBeGreaterThanOrEqual(2);
  // The leader that served the put counted it (status's leader hint may not name it yet: it comes from the nodes' reports).
  let servedWrites = 0;
  for (const member of dev.members.filter((candidate) => candidate.role === 'node')) {
    servedWrites += metricValue(await scrapeMetrics(member.opsPort), 'shoal_node_partition_writes_total') ?? 0;
  }
  expect(servedWrites).toBeGreaterThanOrEqual(1);

  dev.child.kill('SIGINT');
  expect(await dev.exited).toEqual({ code: 0, signal: null });
  for (const member of dev.members) expect(alive(member.pid)).toBe(false);
}

describe('shoal dev', () => {
  it('starts 3 nodes and a router, answers the AWS SDK, and one SIGINT stops every child', { timeout: TEST_TIMEOUT_MS }, async () => {
    const dataDir = join(dataRoot, 'clean');
    const dev = await startDev(dataDir);
    try {
      await checkFirstStart(dev, dataDir);
    } finally {
      // The next test starts on this data directory: a failure above must not leave it locked.
      if (dev.child.exitCode === null && dev.child.signalCode === null) {
        dev.child.kill('SIGINT');
        await dev.exited;
      }
    }
  });

  it('starts again on the same data directory: same node addresses, the data still there; --log-level and --write-units-per-partition reach the children (no info line in the router log; writes past 2 units a second and a burst of 60 are refused)', { timeout: TEST_TIMEOUT_MS }, async () => {
    // The cluster the first test stopped cleanly.
    const dataDir = join(dataRoot, 'clean');
    const logged = async (): Promise<number> => (await readFile(join(dataDir, 'router-1.log'), 'utf8')).split('\n').filter((line) => line.includes('"level":"info"')).length;
    const infoBefore = await logged();
    // At warn the children log no `listening` line: they tell shoal dev their ports over IPC.
    const dev = await startDev(dataDir, ['--log-level', 'warn', '--write-units-per-partition', '2']);
    expect(dev.members.filter((member) => member.role === 'node').map((member) => member.address)).toEqual(firstNodeAddresses);
    const { client, doc } = sdkClients(dev.endpoint);
    expect((await doc.send(new GetCommand({ TableName: 'dev', Key: { id: 'a' }, ConsistentRead: true }))).Item).toEqual({ id: 'a', n: 1 });
    // The one partition admits 2 write units a second and 30 s of them at once: 200 writes in a row cannot all pass.
    let refused: unknown;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      await doc.send(new PutCommand({ TableName: 'dev', Item: { id: `w${i}` } })).catch((error: unknown) => (refused = error));
    }
    expect(refused).toMatchObject({ name: 'ProvisionedThroughputExceededException' });
    client.destroy();
    dev.child.kill('SIGTERM');
    expect(await dev.exited).toEqual({ code: 0, signal: null });
    expect(infoBefore).toBeGreaterThan(0);
    expect(await logged()).toBe(infoBefore);
  });

  it('leaves no child behind when it is killed itself', { timeout: TEST_TIMEOUT_MS }, async () => {
    const dev = await startDev(join(dataRoot, 'orphans'));
    dev.child.kill('SIGKILL');
    expect((await dev.exited).signal).toBe('SIGKILL');
    // Each child sees its channel to the parent close and stops cleanly.
    await eventually('every child gone', () => dev.members.every((member) => !alive(member.pid)), 30_000, 200);
  });

  it('reports a child that dies, stops the others and exits 1', { timeout: TEST_TIMEOUT_MS }, async () => {
    const dev = await startDev(join(dataRoot, 'crash'));
    const victim = dev.members.find((member) => member.role === 'node' && member.id === 2)!;
    process.kill(victim.pid, 'SIGKILL');
    expect((await dev.exited).code).toBe(1);
    expect(dev.stderr()).toContain(`node 2 (pid ${victim.pid}) exited unexpectedly (SIGKILL)`);
    for (const member of dev.members) expect(alive(member.pid)).toBe(false);
  });
});
