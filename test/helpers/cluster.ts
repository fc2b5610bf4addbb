import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ScanCommand, type AttributeValue, type DynamoDBClient, type ScanCommandInput } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Item, TableSchema } from '@shoal/model';
import { answersReady, createClient, FaultInjectionService, freePorts, getRequestToWire, getResultFromWire, PartitionService } from '@shoal/proto';
import { connectCluster, startRouter } from '@shoal/router';
import type { ClusterBackend, ClusterOptions, Credentials, Router } from '@shoal/router';
import { afterAll, beforeAll } from 'vitest';
import { sdkClients } from './shoal.ts';

/**
 * Real clusters for tests: storage nodes as `shoal node` child processes on loopback, routers in the
 * test process (connectCluster + startRouter) so that tests keep their clock and TTL sweeps.
 */

const REPO = resolve(import.meta.dirname, '..', '..');
const MAIN = join(REPO, 'packages', 'cli', 'src', 'main.ts');
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;

/**
 * Every process started here and still running, whether it leads a process group of its own (a
 * `shoal dev` and its children): killed by `killStartedProcesses` (afterAll) or at exit.
 */
const started = new Map<ChildProcess, { detached: boolean }>();
process.once('exit', killStartedProcesses);

export function killStartedProcesses(): void {
  for (const [child, { detached }] of started) {
    try {
      if (detached) process.kill(-child.pid!, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // The group is gone already.
      child.kill('SIGKILL');
    }
  }
  started.clear();
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A `shoal` command running as a child process of the test, its output collected as it comes. */
export interface ShoalProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stdout(): string;
  stderr(): string;
  /** Both streams, interleaved as they arrived. */
  output(): string;
  running(): boolean;
}

/**
 * Starts `shoal <args>` from the repository (tracked, so killed in afterAll or at exit); `detached`:
 * in a process group of its own, killed with every child it started.
 */
export function spawnShoal(args: string[], options: { detached?: boolean } = {}): ShoalProcess {
  const detached = options.detached ?? false;
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached });
  started.set(child, { detached });
  let stdout = '';
  let stderr = '';
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    output += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    output += chunk;
  });
  const exited = new Promise<Exit>((done) =>
    child.once('exit', (code, signal) => {
      started.delete(child);
      done({ code, signal });
    }),
  );
  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    running: () => child.exitCode === null && child.signalCode === null,
  };
}

/**
 * Waits until `pattern` matches what `shoal` printed (`text`: both streams unless told), failing if it
 * exits first or after `timeoutMs`.
 */
export function waitForOutput(
  shoal: ShoalProcess,
  pattern: RegExp,
  what: string,
  timeoutMs: number,
  text: () => string = shoal.output,
): Promise<RegExpExecArray> {
  return new Promise((done, fail) => {
    const stop = (): void => {
      clearTimeout(timer);
      shoal.child.stdout!.off('data', check);
      shoal.child.stderr!.off('data', check);
    };
    const timer = setTimeout(() => {
      stop();
      fail(new Error(`${what}: not in ${timeoutMs} ms:\n${shoal.output()}`));
    }, timeoutMs);
    const check = (): void => {
      const match = pattern.exec(text());
      if (match === null) return;
      stop();
      done(match);
    };
    shoal.child.stdout!.on('data', check);
    shoal.child.stderr!.on('data', check);
    void shoal.exited.then(({ code, signal }) => {
      stop();
      fail(new Error(`${what}: exited (${signal ?? code}) first:\n${shoal.output()}`));
    });
    check();
  });
}

/** One running `shoal node` process. */
export interface NodeProcess {
  readonly nodeId: number;
  readonly pid: number;
  readonly opsPort: number;
  readonly exited: Promise<Exit>;
  /** Its log so far (JSON lines). */
  log(): string;
  running(): boolean;
}

/** Polls until `check` holds, failing with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not so after ${timeoutMs} ms${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
    }
    await new Promise((done) => setTimeout(done, intervalMs));
  }
}

/** The metrics a process's /metrics serves, by name with labels (`name{label="v"}`), as numbers. */
export async function scrapeMetrics(opsPort: number): Promise<Map<string, number>> {
  const response = await fetch(`http://${HOST}:${opsPort}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const metrics = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    metrics.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return metrics;
}

/** The value of metric `name` whatever its labels, summed (a node labels its metrics with its id only). */
export function metricValue(metrics: Map<string, number>, name: string): number | undefined {
  let total: number | undefined;
  for (const [key, value] of metrics) {
    if (key === name || key.startsWith(`${name}{`)) total = (total ?? 0) + value;
  }
  return total;
}

export interface NodeClusterOptions {
  /** Storage nodes (default 3); the first 3 are the meta group. */
  nodes?: number;
  /** Initial partitions of a new table (default: meta's). */
  partitions?: number;
  /** More `shoal node` flags, given to every node (admission limits, split policy...). */
  nodeArgs?: string[];
}

/** Storage node processes on loopback, each on a fixed port and data directory across restarts. */
export class NodeCluster {
  readonly metaAddresses: string[];
  readonly dataRoot: string;
  private readonly ports: Map<number, number>;
  private readonly processes = new Map<number, NodeProcess>();
  private readonly partitions: number | undefined;
  private readonly nodeArgs: string[];

  private constructor(dataRoot: string, ports: Map<number, number>, partitions: number | undefined, nodeArgs: string[]) {
    this.dataRoot = dataRoot;
    this.ports = ports;
    this.partitions = partitions;
    this.nodeArgs = nodeArgs;
    this.metaAddresses = [...ports.keys()].filter((id) => id <= 3).map((id) => this.address(id));
  }

  /** Starts every node and waits until each answers /readyz. */
  static async start(options: NodeClusterOptions = {}): Promise<NodeCluster> {
    const count = options.nodes ?? 3;
    const ports = await freePorts(count);
    const dataRoot = await mkdtemp(join(tmpdir(), 'shoal-cluster-'));
    const cluster = new NodeCluster(dataRoot, new Map(ports.map((port, index) => [index + 1, port])), options.partitions, options.nodeArgs ?? []);
    try {
      await Promise.all(cluster.nodeIds().map((id) => cluster.startNode(id)));
      await cluster.waitReady();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  nodeIds(): number[] {
    return [...this.ports.keys()];
  }

  address(nodeId: number): string {
    return `${HOST}:${this.ports.get(nodeId)}`;
  }

  node(nodeId: number): NodeProcess {
    const node = this.processes.get(nodeId);
    if (node === undefined) throw new Error(`node ${nodeId} was never started`);
    return node;
  }

  /** Starts node `nodeId` (again: same port, same data) and waits for its `listening` line. */
  async startNode(nodeId: number): Promise<NodeProcess> {
    const previous = this.processes.get(nodeId);
    if (previous?.running()) throw new Error(`node ${nodeId} is running`);
    const metaPeers = this.nodeIds()
      .filter((id) => id <= 3)
      .map((id) => `${id}=${this.address(id)}`)
      .join(',');
    const args = ['node', '--node-id', String(nodeId), '--listen', this.address(nodeId), '--data-dir', join(this.dataRoot, `node-${nodeId}`), '--meta-peers', metaPeers, '--ops-port', '0'];
    if (this.partitions !== undefined) args.push('--default-partitions', String(this.partitions));
    args.push(...this.nodeArgs);
    const shoal = spawnShoal(args);
    const [, opsPort] = await waitForOutput(shoal, /"msg":"listening".*"opsPort":(\d+)/, `node ${nodeId} listening`, START_TIMEOUT_MS);
    const node: NodeProcess = {
      nodeId,
      pid: shoal.child.pid!,
      opsPort: Number(opsPort),
      exited: shoal.exited,
      log: shoal.output,
      running: shoal.running,
    };
    this.processes.set(nodeId, node);
    return node;
  }

  /** Sends `signal` to node `nodeId` and waits for it to exit. */
  async signal(nodeId: number, signal: NodeJS.Signals): Promise<Exit> {
    const node = this.node(nodeId);
    if (node.running()) process.kill(node.pid, signal);
    const timer = setTimeout(() => node.running() && process.kill(node.pid, 'SIGKILL'), STOP_TIMEOUT_MS);
    const exit = await node.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Waits until every running node (or those named) answers /readyz with 200. */
  async waitReady(nodeIds: number[] = this.nodeIds().filter((id) => this.processes.get(id)?.running())): Promise<void> {
    await eventually(`nodes ${nodeIds.join(',')} ready`, async () => {
      for (const id of nodeIds) {
        const node = this.node(id);
        if (!node.running()) throw new Error(`node ${id} exited:\n${node.log()}`);
        if (!(await answersReady(HOST, node.opsPort))) return false;
      }
      return true;
    }, READY_TIMEOUT_MS, 200);
  }

  async metrics(nodeId: number): Promise<Map<string, number>> {
    return scrapeMetrics(this.node(nodeId).opsPort);
  }

  /** A node metric summed over the nodes (NaN when one lacks it). */
  async metricSum(name: string): Promise<number> {
    let sum = 0;
    for (const nodeId of this.nodeIds()) sum += metricValue(await this.metrics(nodeId), name) ?? Number.NaN;
    return sum;
  }

  /** Every node refuses (or takes again) shipped GSI records (fault injection): the GSI's partitions, wherever led, take none. */
  async refuseIndexEntries(refuse: boolean): Promise<void> {
    for (const nodeId of this.nodeIds()) {
      const faults = createClient(FaultInjectionService, this.address(nodeId));
      try {
        const { indexEntriesRefused } = await faults.setIndexEntriesFault({ refuse });
        if (indexEntriesRefused !== refuse) throw new Error(`node ${nodeId} answered indexEntriesRefused ${indexEntriesRefused}, not ${refuse}`);
      } finally {
        faults.close();
      }
    }
  }

  /** Kills every node and removes the data. */
  async close(): Promise<void> {
    await Promise.all([...this.processes.keys()].map((id) => this.signal(id, 'SIGKILL')));
    await rm(this.dataRoot, { recursive: true, force: true });
  }
}

export interface ClusterRouter {
  endpoint: string;
  router: Router;
  backend: ClusterBackend;
  close(): Promise<void>;
}

/**
 * A router in this process over the cluster whose meta group is at `metaAddresses`; waits until it
 * holds a partition map. `transactions`: its cluster client's transaction options (deadline, faults).
 */
export async function startClusterRouter(
  metaAddresses: string[],
  options: { now?: () => number; ttlSweepIntervalMs?: number; credentials?: Credentials[]; transactions?: ClusterOptions['transactions'] } = {},
): Promise<ClusterRouter> {
  const backend = await connectCluster({ metaAddresses, transactions: options.transactions });
  let router: Router;
  try {
    await eventually('router ready', () => backend.isReady(), READY_TIMEOUT_MS);
    router = await startRouter({
      partitions: backend.partitions,
      catalog: backend.catalog,
      host: HOST,
      port: 0,
      now: options.now,
      ttlSweepIntervalMs: options.ttlSweepIntervalMs ?? 0,
      credentials: options.credentials,
    });
  } catch (error) {
    await backend.close();
    throw error;
  }
  return {
    endpoint: `http://${HOST}:${router.port}`,
    router,
    backend,
    async close() {
      await router.close();
      await backend.close();
    },
  };
}

/** A node cluster, a router in this process over it and AWS SDK clients of the router: what a cluster test drives. */
export interface RoutedCluster {
  nodes: NodeCluster;
  front: ClusterRouter;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
}

/**
 * One RoutedCluster for the whole test file: started in a beforeAll (within `timeoutMs`), closed in an
 * afterAll with every process the file started. The object returned is filled in when that beforeAll
 * runs; the file's beforeAll hooks declared after this call already see it.
 */
export function routedClusterPerFile(options: NodeClusterOptions, timeoutMs: number): RoutedCluster {
  const cluster = {} as Partial<RoutedCluster>;
  beforeAll(async () => {
    cluster.nodes = await NodeCluster.start(options);
    cluster.front = await startClusterRouter(cluster.nodes.metaAddresses);
    Object.assign(cluster, sdkClients(cluster.front.endpoint));
  }, timeoutMs);
  afterAll(async () => {
    // Whatever startup got to before a failure.
    cluster.client?.destroy();
    await cluster.front?.close();
    await cluster.nodes?.close();
    killStartedProcesses();
  });
  return cluster as RoutedCluster;
}

/** `shoal admin status --json` as it prints it. */
export interface AdminStatus {
  metaLeader: number;
  mapVersion: number;
  nodes: { id: number; address: string; state: string; replicas: number; hosted: number; leaders: number; secondsSinceHeartbeat: number }[];
  partitions: { id: number; table: string; range: string; epoch: number; leader?: number; replicas: string[]; appliedIndex?: number; lag?: number }[];
}

/** Runs `shoal <args>` to its end (bounded), as a user would. */
export async function runShoal(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const shoal = spawnShoal(args);
  const timer = setTimeout(() => shoal.child.kill('SIGKILL'), timeoutMs);
  // 'close', not 'exit': the output is all read by then.
  const code = await new Promise<number | null>((done) => shoal.child.once('close', done));
  clearTimeout(timer);
  return { code, stdout: shoal.stdout(), stderr: shoal.stderr() };
}

export async function adminStatus(metaAddresses: string[]): Promise<AdminStatus> {
  const { code, stdout, stderr } = await runShoal(['admin', 'status', '--json', '--meta', metaAddresses.join(',')]);
  if (code !== 0) throw new Error(`shoal admin status failed (${code}): ${stderr}`);
  return JSON.parse(stdout) as AdminStatus;
}

/** The single partition of `table` once it is on the 3 voters 1, 2 and 3 and a leader is known. */
export async function placedPartition(nodes: NodeCluster, table: string): Promise<AdminStatus['partitions'][number]> {
  let found: AdminStatus['partitions'][number] | undefined;
  await eventually(
    `${table} placed on 3 voters with a leader`,
    async () => {
      found = (await adminStatus(nodes.metaAddresses)).partitions.find((row) => row.table === table);
      return found?.leader !== undefined && found.replicas.toSorted().join() === '1,2,3';
    },
    60_000,
    500,
  );
  return found!;
}

/**
 * The leader of partition `partitionId` once the map's leader hint names the one running node that
 * reports leading it (shoal_node_raft_is_leader): the hint follows the nodes' reports, so it can
 * name a former leader for a while after a change.
 */
export async function reportedLeader(nodes: NodeCluster, partitionId: number): Promise<number> {
  let leader: number | undefined;
  await eventually(
    `the map names the node leading partition ${partitionId}`,
    async () => {
      const hint = (await adminStatus(nodes.metaAddresses)).partitions.find((row) => row.id === partitionId)?.leader;
      const running = nodes.nodeIds().filter((id) => nodes.node(id).running());
      const leading = (await Promise.all(running.map(async (id) => ((await nodes.metrics(id)).get(`shoal_node_raft_is_leader{node_id="${id}",partition="${partitionId}"}`) === 1 ? id : undefined)))).filter((id) => id !== undefined);
      leader = leading.length === 1 && leading[0] === hint ? hint : undefined;
      return leader !== undefined;
    },
    30_000,
    250,
  );
  return leader!;
}

/**
 * An eventually consistent Get sent straight to one node's PartitionService, not through a router:
 * what that replica holds itself.
 */
export async function getFromNode(
  address: string,
  partition: { id: number; epoch: number },
  table: TableSchema,
  key: Item,
): Promise<Item | undefined> {
  const client = createClient(PartitionService, address);
  try {
    const response = await client.get(
      getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table, key }, { consistent: false }),
      { timeoutMs: 5_000 },
    );
    return getResultFromWire(response)?.item;
  } finally {
    client.close();
  }
}

type AttributeMap = Record<string, AttributeValue>;

/** Every item of a Scan (of a table or an index), following LastEvaluatedKey; bounded. */
export async function scanAll(client: DynamoDBClient, input: ScanCommandInput): Promise<AttributeMap[]> {
  const items: AttributeMap[] = [];
  let startKey: AttributeMap | undefined;
  for (let page = 0; page < 1_000; page++) {
    const answer = await client.send(new ScanCommand({ ...input, ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }) }));
    items.push(...(answer.Items ?? []));
    startKey = answer.LastEvaluatedKey;
    if (startKey === undefined) return items;
  }
  throw new Error(`Scan of ${input.TableName}${input.IndexName === undefined ? '' : `/${input.IndexName}`} did not end in 1,000 pages`);
}

/** What a GSI is: its key attributes and projection, and the table's key attributes. */
export interface GsiShape {
  tableKeys: string[];
  hash: string;
  range?: string;
  projection: 'ALL' | 'KEYS_ONLY' | { include: string[] };
}

/**
 * The entries a GSI holds for the table's items, as DynamoDB defines them: one per item having every
 * key attribute of the index, projected; sorted (canonical JSON) for comparison with a Scan of it.
 */
export function expectedGsiEntries(items: readonly AttributeMap[], gsi: GsiShape): string[] {
  const keys = [...gsi.tableKeys, gsi.hash, ...(gsi.range === undefined ? [] : [gsi.range])];
  const entries: string[] = [];
  for (const item of items) {
    if (!keys.every((name) => Object.hasOwn(item, name))) continue;
    const kept = gsi.projection === 'ALL' ? Object.keys(item) : [...keys, ...(gsi.projection === 'KEYS_ONLY' ? [] : gsi.projection.include)];
    entries.push(canonicalItem(Object.fromEntries(kept.filter((name) => Object.hasOwn(item, name)).map((name) => [name, item[name]]))));
  }
  return entries.sort();
}

/** An item as JSON with its attributes in name order: equal items give equal strings. */
export function canonicalItem(item: AttributeMap): string {
  return JSON.stringify(Object.keys(item).sort().map((name) => [name, item[name]]));
}
