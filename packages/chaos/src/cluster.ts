/**
 * The cluster under test: `shoal node` and `shoal router` child processes on loopback, started,
 * killed, restarted, paused and resumed by the chaos run. Children are forked with an IPC channel,
 * so they stop by themselves if this process dies without stopping them (see the CLI's lifecycle).
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { answersReady, freePorts } from '@shoal/proto';

const CLI_MAIN = resolve(import.meta.dirname, '..', '..', 'cli', 'src', 'main.ts');
export const HOST = '127.0.0.1';
/** Nodes 1..3 form the meta group. */
const META_PEER_COUNT = 3;
const LISTENING_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_TAIL_LINES = 30;

export type Role = 'node' | 'router';

export interface ClusterOptions {
  nodes: number;
  routers: number;
  /** Initial partitions of every new table (the meta group's default). */
  partitions: number;
  /** Parent of the nodes' data directories and of every process's log file. */
  dir: string;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One process slot: a node or router id whose process comes and goes across kills and restarts. */
export class Member {
  readonly role: Role;
  readonly id: number;
  readonly logFile: string;
  readonly #args: string[];
  #process: ChildProcess | undefined;
  #exited: Promise<Exit> = Promise.resolve({ code: 0, signal: null });
  #listening: Promise<{ address: string; opsPort: number }> = new Promise(() => {});
  #paused = false;
  /** The last lines the current process logged, for error messages. */
  readonly tail: string[] = [];
  /** Exits nobody asked for (crashes), reported by the run. */
  readonly unexpectedExits: string[] = [];
  #expectingExit = false;

  constructor(role: Role, id: number, args: string[], logFile: string) {
    this.role = role;
    this.id = id;
    this.#args = args;
    this.logFile = logFile;
  }

  get name(): string {
    return `${this.role} ${this.id}`;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  running(): boolean {
    const child = this.#process;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** The address it serves (node: gRPC, router: DynamoDB HTTP) once listening. */
  listening(): Promise<{ address: string; opsPort: number }> {
    return this.#listening;
  }

  start(): void {
    if (this.running()) throw new Error(`${this.name} is already running`);
    const child = fork(CLI_MAIN, [this.role, ...this.#args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: [],
    });
    this.#process = child;
    this.#paused = false;
    this.#expectingExit = false;
    this.tail.length = 0;
    const log = createWriteStream(this.logFile, { flags: 'a' });
    let rest = '';
    let onListening: (value: { address: string; opsPort: number }) => void = () => {};
    this.#listening = new Promise((done) => (onListening = done));
    const take = (chunk: string): void => {
      log.write(chunk);
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        this.tail.push(line);
        if (this.tail.length > LOG_TAIL_LINES) this.tail.shift();
        const record = parseRecord(line);
        if (record?.msg !== 'listening') continue;
        const address = typeof record.address === 'string' ? record.address : record.endpoint;
        if (typeof address === 'string' && typeof record.opsPort === 'number') {
          onListening({ address: address.replace(/^http:\/\//, ''), opsPort: record.opsPort });
        }
      }
    };
    child.stdout!.setEncoding('utf8').on('data', take);
    child.stderr!.setEncoding('utf8').on('data', take);
    this.#exited = new Promise((done) =>
      child.once('exit', (code, signal) => {
        log.end();
        if (!this.#expectingExit) this.unexpectedExits.push(`${this.name} exited by itself (${signal ?? `code ${code}`})`);
        done({ code, signal });
      }),
    );
  }

  /** Resolves once its /readyz answers 200; rejects if it exits first or stays unready too long. */
  async waitReady(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const exited = this.#exited.then(({ code, signal }) => {
      throw new Error(`${this.name} exited (${signal ?? `code ${code}`}) before it was ready\nits last log lines:\n${this.tail.join('\n')}`);
    });
    const ready = (async (): Promise<void> => {
      const { opsPort } = await withTimeout(this.#listening, Math.min(timeoutMs, LISTENING_TIMEOUT_MS), `${this.name} not listening`);
      while (Date.now() < deadline) {
        if (!this.running()) return;
        if (await answersReady(HOST, opsPort)) return;
        await sleep(200);
      }
      throw new Error(`${this.name} not ready after ${timeoutMs / 1000} s`);
    })();
    await Promise.race([ready, exited]);
  }

  /** SIGKILL: no chance to flush or say goodbye. */
  async kill(): Promise<void> {
    if (!this.running()) return;
    this.#expectingExit = true;
    this.#process!.kill('SIGKILL');
    this.#paused = false;
    await this.#exited;
  }

  pause(): void {
    if (!this.running() || this.#paused) return;
    this.#process!.kill('SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    if (!this.running() || !this.#paused) return;
    this.#process!.kill('SIGCONT');
    this.#paused = false;
  }

  /** SIGTERM (after SIGCONT if paused), then SIGKILL if it does not stop in time. */
  async stop(): Promise<void> {
    if (!this.running()) return;
    this.#expectingExit = true;
    this.resume();
    this.#process!.kill('SIGTERM');
    const timer = setTimeout(() => this.#process?.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Last resort on the way out: synchronous, for process exit handlers. */
  killNow(): void {
    if (!this.running()) return;
    this.#expectingExit = true;
    this.#process!.kill('SIGKILL');
  }
}

function parseRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, fail) => {
        timer = setTimeout(() => fail(new Error(`${what} after ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every member of every cluster started by this process, stopped at exit whatever happens. */
const everyMember = new Set<Member>();
process.once('exit', () => {
  for (const member of everyMember) member.killNow();
});

export class ChaosCluster {
  readonly nodes: Member[];
  readonly routers: Member[];
  /** host:port of the meta peers' gRPC servers. */
  readonly metaAddresses: string[];
  /** host:port of each router's DynamoDB endpoint (fixed across restarts). */
  readonly routerEndpoints: string[];
  /** host:port of each node's gRPC server, by node id - 1 (fixed across restarts). */
  readonly nodeAddresses: string[];

  private constructor(nodes: Member[], routers: Member[], metaAddresses: string[], routerEndpoints: string[], nodeAddresses: string[]) {
    this.nodes = nodes;
    this.routers = routers;
    this.metaAddresses = metaAddresses;
    this.routerEndpoints = routerEndpoints;
    this.nodeAddresses = nodeAddresses;
  }

  /** The meta group's members (node ids). */
  get metaPeers(): number[] {
    return Array.from({ length: META_PEER_COUNT }, (_, index) => index + 1);
  }

  /** Starts every node then every router, each on ports chosen now and kept across restarts, and waits until all are ready. */
  static async start(options: ClusterOptions): Promise<ChaosCluster> {
    if (options.nodes < META_PEER_COUNT) throw new Error(`a chaos cluster needs at least ${META_PEER_COUNT} nodes`);
    if (options.routers < 1) throw new Error('a chaos cluster needs at least one router');
    await mkdir(options.dir, { recursive: true });
    const ports = await freePorts(options.nodes + options.routers, HOST);
    const nodeAddress = (id: number): string => `${HOST}:${ports[id - 1]}`;
    const metaIds = Array.from({ length: META_PEER_COUNT }, (_, index) => index + 1);
    const metaPeers = metaIds.map((id) => `${id}=${nodeAddress(id)}`).join(',');
    const metaAddresses = metaIds.map(nodeAddress);
    const nodes: Member[] = [];
    for (let id = 1; id <= options.nodes; id++) {
      const dataDir = join(options.dir, `node-${id}`);
      await mkdir(dataDir, { recursive: true });
      const args = ['--node-id', String(id), '--listen', nodeAddress(id), '--data-dir', dataDir, '--meta-peers', metaPeers];
      args.push('--ops-host', HOST, '--ops-port', '0', '--default-partitions', String(options.partitions));
      // FaultInjectionService: network partitions, disk faults, leadership transfers (test only).
      args.push('--enable-fault-injection');
      nodes.push(new Member('node', id, args, join(options.dir, `node-${id}.log`)));
    }
    const routerEndpoints: string[] = [];
    const routers: Member[] = [];
    for (let id = 1; id <= options.routers; id++) {
      const port = ports[options.nodes + id - 1];
      routerEndpoints.push(`${HOST}:${port}`);
      const args = ['--meta', metaAddresses.join(','), '--host', HOST, '--port', String(port), '--ops-host', HOST, '--ops-port', '0'];
      args.push('--router-id', String(id));
      routers.push(new Member('router', id, args, join(options.dir, `router-${id}.log`)));
    }
    const nodeAddresses = nodes.map((node) => nodeAddress(node.id));
    const cluster = new ChaosCluster(nodes, routers, metaAddresses, routerEndpoints, nodeAddresses);
    for (const member of cluster.members()) everyMember.add(member);
    try {
      for (const node of nodes) node.start();
      await Promise.all(nodes.map((node) => node.listening()));
      for (const router of routers) router.start();
      await Promise.all(cluster.members().map((member) => member.waitReady()));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  members(): Member[] {
    return [...this.nodes, ...this.routers];
  }

  node(id: number): Member {
    const node = this.nodes.find((member) => member.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Crashes of members nobody killed. */
  unexpectedExits(): string[] {
    return this.members().flatMap((member) => member.unexpectedExits);
  }

  /** Routers first, so that no request is cut off halfway by a vanished node. */
  async stop(): Promise<void> {
    await Promise.all(this.routers.map((router) => router.stop()));
    await Promise.all(this.nodes.map((node) => node.stop()));
    for (const member of this.members()) everyMember.delete(member);
  }
}
