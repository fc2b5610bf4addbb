import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isListening, type Listening } from '../lifecycle.ts';
import type { LogLevel } from '../log.ts';

/**
 * `shoal dev`: a real cluster on loopback. Storage nodes and routers run as child processes of this
 * one (`shoal node`, `shoal router`); this process only starts, watches and stops them.
 */

const MAIN = resolve(import.meta.dirname, '..', 'main.ts');
/** Nodes 1..3 form the meta group; nodes beyond are storage only. */
const META_PEER_COUNT = 3;
const READY_TIMEOUT_MS = 120_000;
const LISTENING_TIMEOUT_MS = 60_000;
/** How long children get to stop cleanly before they are killed. */
const CHILD_STOP_TIMEOUT_MS = 10_000;
const LOG_TAIL_LINES = 20;

/**
 * @shoal/proto (free ports, the readiness probe), loaded when first wanted rather than before the
 * children start: its ~0.4 s of CPU then overlaps theirs.
 */
const proto = (): Promise<typeof import('@shoal/proto')> => import('@shoal/proto');

export interface DevClusterOptions {
  nodes: number;
  routers: number;
  host: string;
  /** Port of the first router; the next ones take the following ports. 0: every router lets the OS choose. */
  port: number;
  dataDir: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Initial partitions of a new table (meta's default). */
  partitions?: number;
  /** Capacity units a second each partition admits (the nodes' defaults, DynamoDB's, when absent). */
  readUnitsPerPartition?: number;
  writeUnitsPerPartition?: number;
  /** Lowest level the children log (their SHOAL_LOG_LEVEL); default: as in this environment. */
  logLevel?: LogLevel;
}

type Role = 'node' | 'router';


interface Child {
  role: Role;
  id: number;
  process: ChildProcess;
  logFile: string;
  /** The last lines it logged, shown when it dies. */
  tail: string[];
  listening: Promise<Listening>;
  ready: boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Ports chosen for the nodes on first start, kept so that a restarted cluster finds its members again. */
interface ClusterLayout {
  host: string;
  nodePorts: Record<string, number>;
}

function layoutFile(dataDir: string): string {
  return join(dataDir, 'cluster.json');
}

/** The meta group's addresses of the `shoal dev` cluster whose data is in `dataDir` (for `shoal admin`). */
export async function devClusterMetaAddresses(dataDir: string): Promise<string[]> {
  let layout: ClusterLayout;
  try {
    layout = JSON.parse(await readFile(layoutFile(dataDir), 'utf8')) as ClusterLayout;
  } catch {
    throw new Error(`no shoal dev cluster in ${dataDir} (no cluster.json there): give --meta or --data-dir`);
  }
  return metaPeerIds(Object.keys(layout.nodePorts).length).map((id) => `${layout.host}:${layout.nodePorts[id]}`);
}

function metaPeerIds(nodes: number): number[] {
  return Array.from({ length: Math.min(META_PEER_COUNT, nodes) }, (_, index) => index + 1);
}

async function loadLayout(dataDir: string, host: string, nodes: number): Promise<ClusterLayout> {
  const file = layoutFile(dataDir);
  let layout: ClusterLayout = { host, nodePorts: {} };
  try {
    layout = JSON.parse(await readFile(file, 'utf8')) as ClusterLayout;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const missing = Array.from({ length: nodes }, (_, index) => index + 1).filter((id) => layout.nodePorts[id] === undefined);
  if (missing.length > 0) {
    const { freePorts } = await proto();
    const ports = await freePorts(missing.length, host);
    missing.forEach((id, index) => (layout.nodePorts[id] = ports[index]));
  }
  await writeFile(file, `${JSON.stringify(layout, null, 2)}\n`);
  return layout;
}

function spawnChild(role: Role, id: number, args: string[], logFile: string, env: NodeJS.ProcessEnv): Child {
  const child = fork(MAIN, [role, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env,
    execArgv: process.execArgv,
  });
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  const tail: string[] = [];
  let rest = '';
  let onListening: (listening: Listening) => void = () => {};
  const listening = new Promise<Listening>((done) => (onListening = done));
  const take = (chunk: string): void => {
    log.write(chunk);
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
    }
  };
  // Told over IPC, so that it does not depend on the child's log level.
  child.on('message', (message) => {
    if (isListening(message)) onListening({ address: message.address, opsPort: message.opsPort });
  });
  child.stdout!.setEncoding('utf8').on('data', take);
  child.stderr!.setEncoding('utf8').on('data', take);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => {
      log.end();
      done({ code, signal });
    }),
  );
  return { role, id, process: child, logFile, tail, listening, ready: false, exited };
}

function describe(child: Child): string {
  return `${child.role} ${child.id} (pid ${child.process.pid})`;
}

function running(child: Child): boolean {
  return child.process.exitCode === null && child.process.signalCode === null;
}

/** Polls `/readyz` until it answers 200 or `deadline` passes. */
async function waitReady(opsHost: string, opsPort: number, deadline: number, abandoned: AbortSignal): Promise<void> {
  const { answersReady } = await proto();
  while (!abandoned.aborted) {
    if (await answersReady(opsHost, opsPort)) return;
    if (Date.now() > deadline) throw new Error(`not ready after ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((done) => setTimeout(done, 200));
  }
}

/** Rejects with what went wrong when the child exits first or stays silent too long. */
function before<T>(child: Child, work: Promise<T>, what: string, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    child.exited.then(({ code, signal }) => {
      throw new Error(`${describe(child)} exited (${signal ?? `code ${code}`}) before ${what}`);
    }),
    new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`${describe(child)} not ${what} after ${timeoutMs / 1000} s`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** SIGTERM, then SIGKILL for those still running after the timeout. */
async function stopChildren(children: readonly Child[]): Promise<boolean> {
  const live = children.filter(running);
  for (const child of live) child.process.kill('SIGTERM');
  let clean = true;
  await Promise.all(
    live.map(async (child) => {
      const timer = setTimeout(() => {
        clean = false;
        child.process.kill('SIGKILL');
      }, CHILD_STOP_TIMEOUT_MS);
      const { code } = await child.exited;
      clearTimeout(timer);
      if (code !== 0) clean = false;
    }),
  );
  return clean;
}

function printFailure(child: Child, reason: string): void {
  console.error(`shoal dev: ${describe(child)} ${reason}; its last log lines (all in ${child.logFile}):`);
  for (const line of child.tail) console.error(`  ${line}`);
}

export async function runDevCluster(options: DevClusterOptions): Promise<void> {
  if (options.nodes < 1) throw new Error('--nodes must be at least 1');
  if (options.routers < 1) throw new Error('--routers must be at least 1');
  const host = options.host;
  await mkdir(options.dataDir, { recursive: true });
  const layout = await loadLayout(options.dataDir, host, options.nodes);
  const nodeAddress = (id: number): string => `${host}:${layout.nodePorts[id]}`;
  const metaPeers = metaPeerIds(options.nodes).map((id) => `${id}=${nodeAddress(id)}`).join(',');
  const metaAddresses = metaPeerIds(options.nodes).map(nodeAddress).join(',');

  const children: Child[] = [];
  let stopping = false;
  const stopAll = async (exitCode: number): Promise<never> => {
    stopping = true;
    // Routers first, so that no request is cut off halfway by a vanished node.
    const routersClean = await stopChildren(children.filter((child) => child.role === 'router'));
    const nodesClean = await stopChildren(children.filter((child) => child.role === 'node'));
    process.exit(exitCode !== 0 ? exitCode : routersClean && nodesClean ? 0 : 1);
  };
  const watch = (child: Child): void => {
    void child.exited.then(({ code, signal }) => {
      if (stopping) return;
      printFailure(child, `exited unexpectedly (${signal ?? `code ${code}`})`);
      void stopAll(1);
    });
  };
  const onSignal = (): void => {
    if (!stopping) void stopAll(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  if (options.logLevel !== undefined) childEnv.SHOAL_LOG_LEVEL = options.logLevel;
  delete childEnv.SHOAL_ACCESS_KEY_ID;
  delete childEnv.SHOAL_SECRET_ACCESS_KEY;
  try {
    for (let id = 1; id <= options.nodes; id++) {
      const dataDir = join(options.dataDir, `node-${id}`);
      await mkdir(dataDir, { recursive: true });
      const args = ['--node-id', String(id), '--listen', nodeAddress(id), '--data-dir', dataDir, '--meta-peers', metaPeers, '--ops-host', host, '--ops-port', '0'];
      if (options.partitions !== undefined) args.push('--default-partitions', String(options.partitions));
      if (options.readUnitsPerPartition !== undefined) args.push('--read-units-per-partition', String(options.readUnitsPerPartition));
      if (options.writeUnitsPerPartition !== undefined) args.push('--write-units-per-partition', String(options.writeUnitsPerPartition));
      const child = spawnChild('node', id, args, join(options.dataDir, `node-${id}.log`), childEnv);
      children.push(child);
      watch(child);
    }
    const nodes = children.slice();
    await Promise.all(nodes.map((child) => before(child, child.listening, 'listening', LISTENING_TIMEOUT_MS)));

    // Credentials travel in the environment, not on command lines that `ps` shows.
    const routerEnv = { ...childEnv };
    if (options.accessKeyId !== undefined) routerEnv.SHOAL_ACCESS_KEY_ID = options.accessKeyId;
    if (options.secretAccessKey !== undefined) routerEnv.SHOAL_SECRET_ACCESS_KEY = options.secretAccessKey;
    for (let id = 1; id <= options.routers; id++) {
      const port = options.port === 0 ? 0 : options.port + id - 1;
      const args = ['--meta', metaAddresses, '--host', host, '--port', String(port), '--ops-host', host, '--ops-port', '0', '--router-id', String(id), '--routers', String(options.routers)];
      const child = spawnChild('router', id, args, join(options.dataDir, `router-${id}.log`), routerEnv);
      children.push(child);
      watch(child);
    }
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const abandoned = new AbortController();
    try {
      await Promise.all(
        children.map(async (child) => {
          const { opsPort } = await before(child, child.listening, 'listening', LISTENING_TIMEOUT_MS);
          await before(child, waitReady(host, opsPort, deadline, abandoned.signal), 'ready', READY_TIMEOUT_MS);
          child.ready = true;
        }),
      );
    } finally {
      abandoned.abort();
    }
  } catch (error) {
    if (stopping) return; // a child died; its watcher reports it and stops the rest
    console.error(`shoal dev: ${error instanceof Error ? error.message : String(error)}`);
    for (const child of children) if (running(child) && !child.ready) printFailure(child, 'was not ready');
    await stopAll(1);
  }
  if (stopping) return;

  for (const child of children) {
    const { address, opsPort } = await child.listening;
    console.log(`${child.role.padEnd(6)} ${String(child.id).padStart(2)}  ${address.padEnd(24)} ops ${host}:${String(opsPort).padEnd(5)}  pid ${child.process.pid}`);
  }
  const endpoints = await Promise.all(children.filter((child) => child.role === 'router').map(async (child) => (await child.listening).address));
  console.log(`shoal dev ready: DynamoDB endpoint ${endpoints.join(', ')} (data: ${options.dataDir})`);
}
