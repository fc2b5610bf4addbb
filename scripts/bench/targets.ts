/**
 * The servers under test, each started here on free loopback ports with its own temporary data, and
 * stopped (SIGTERM, then SIGKILL if it lingers) with its data deleted when done, on errors and on
 * interruption.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, freePorts } from '@shoal/proto';
import type { Endpoint } from './dynamodb-http.ts';
import type { Protocol } from './workloads.ts';

export const TARGET_NAMES = ['shoal', 'dynalite', 'dynalite-disk', 'cluster', 'etcd'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface RunningTarget {
  name: TargetName;
  protocol: Protocol;
  /** Where the load goes (for etcd: its leader's client URL). */
  endpoint: Endpoint;
  /** What the target is, for the report (e.g. its data directory). */
  description: string;
  /** The end of what the server printed, to show when something fails. */
  recentOutput(): string;
  /** CPU time the server's processes have used so far, in seconds (undefined where /proc is missing). */
  cpuSeconds(): number | undefined;
  /** The same by role for a cluster (`router`, `nodes`), to see where the CPU of a request goes. */
  cpuSecondsByRole?(): Record<string, number> | undefined;
  /** Page faults so far by role for a cluster (each costs ~17 µs of kernel time on the bench VM). */
  pageFaultsByRole?(): Record<string, number> | undefined;
  /** A cluster's Raft counters summed over its nodes (leader elections...), read from their /metrics. */
  raftCounters?(): Promise<RaftCounters | undefined>;
  stop(): Promise<void>;
}

/** Raft events of a cluster, summed over its storage nodes since they started. */
export interface RaftCounters {
  /** Group leaderships won: every leader change (and first election) of every group. */
  leadersElected: number;
  /** Leaderships lost (stepped down or deposed). */
  leadersLost: number;
  /** Tick timer callbacks held up by 2 tick intervals or more: event-loop stalls of the nodes. */
  tickStalls: number;
  /** Partitions split (by heat, size or command): each costs the writes of its partition a short dip. */
  partitionSplits: number;
  /** Calls the routers sent to a node again (after a redirect, an unreachable node, a leaderless group...). */
  routerRetries: number;
  /** What the routers' retries followed: redirects (NotLeader, StaleEpoch, KeyOutOfRange), nodes unreachable or whose map was behind. */
  notLeader: number;
  staleEpoch: number;
  keyOutOfRange: number;
  unreachable: number;
  nodeMapBehind: number;
  partitionNotFound: number;
  /** Partition map fetches the routers made (a key or address the map lacked, a redirect without a usable descriptor). */
  mapRefreshes: number;
  /** Raft log batches written and fsynced, over all nodes, and those that took more than 25 ms (a write waits for one). */
  raftFsyncs: number;
  raftFsyncsOver25ms: number;
  /** Work the nodes did, summed over them: host rounds, Raft log batches (synced or not), entries applied, Raft messages sent. */
  raftRounds: number;
  raftLogBatches: number;
  raftEntriesApplied: number;
  raftMessagesSent: number;
}

export interface TargetOptions {
  /** Write V8 CPU profiles of the Node servers (every process of a cluster) into this directory. */
  cpuProfileDir?: string;
  /** Leave a Shoal target's data directory (a cluster's node and router logs) in place when it stops. */
  keepData?: boolean;
  /** Extra `shoal dev --single` flags for the shoal target (e.g. `--sync`). */
  shoalFlags?: string[];
  /** Extra Node flags of the Shoal servers (a cluster's `shoal dev`, whose nodes and router inherit them). */
  nodeFlags?: string[];
}

const HOST = '127.0.0.1';
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const SHOAL_MAIN = path.join(REPO_ROOT, 'packages/cli/src/main.ts');
const ETCD = '/usr/bin/etcd';
const READY_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 15_000;
const ETCD_MEMBERS = 3;
const POLL_MS = 200;

/** Children not yet stopped: killed outright if this process exits first. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Stops every child still running; for SIGINT/SIGTERM handlers and fatal errors. */
export async function stopAllTargets(): Promise<void> {
  await Promise.all([...liveChildren].map((child) => stopChild(child)));
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    liveChildren.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const forceKill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(forceKill);
      liveChildren.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const KEPT_OUTPUT_CHARS = 4000;
/** Linux reports process times in USER_HZ ticks, 100 a second on every mainstream kernel. */
const CLOCK_TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, [7] minflt, [9] majflt, [11] utime, [12] stime, [19] start time. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it start at "state" (field 3).
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The processes `roots` and all their descendants, with their /proc stat fields; undefined without /proc. */
function processTree(roots: readonly (number | undefined)[]): Map<number, string[]> | undefined {
  const wanted = new Set(roots.filter((pid): pid is number => pid !== undefined));
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
  } catch {
    return undefined;
  }
  const stats = new Map<number, string[]>();
  const parents = new Map<number, number>();
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields === undefined) continue;
    stats.set(pid, fields);
    parents.set(pid, Number(fields[1]));
  }
  // Walk up from each process: part of the tree when an ancestor (or itself) is one of the roots.
  const tree = new Map<number, string[]>();
  for (const [pid, fields] of stats) {
    for (let ancestor: number | undefined = pid, depth = 0; ancestor !== undefined && ancestor > 1 && depth < 64; depth++) {
      if (wanted.has(ancestor)) {
        tree.set(pid, fields);
        break;
      }
      ancestor = parents.get(ancestor);
    }
  }
  return tree;
}

/**
 * User plus system CPU seconds of the processes `roots` and all their descendants (a cluster's
 * `shoal dev` forks its nodes and routers). A descendant that exits takes its time with it, which
 * is fine between two readings of a running server.
 */
function processTreeCpuSeconds(roots: readonly (number | undefined)[]): number | undefined {
  const tree = processTree(roots);
  if (tree === undefined || tree.size === 0) return undefined;
  let ticks = 0;
  for (const fields of tree.values()) ticks += Number(fields[11]) + Number(fields[12]);
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** Page faults (minor and major) of the processes `roots` and all their descendants so far. */
function processTreePageFaults(roots: readonly (number | undefined)[]): number | undefined {
  const tree = processTree(roots);
  if (tree === undefined || tree.size === 0) return undefined;
  let faults = 0;
  for (const fields of tree.values()) faults += Number(fields[7]) + Number(fields[9]);
  return faults;
}

/** Stops a child, then kills whatever it forked that outlived it (a `shoal dev` killed before it stopped its nodes). */
async function stopChildAndDescendants(child: ChildProcess): Promise<void> {
  const descendants = [...(processTree([child.pid]) ?? [])].filter(([pid]) => pid !== child.pid);
  await stopChild(child);
  for (const [pid, fields] of descendants) {
    // Only the same process (same start time, field 22 of stat), never another that reused its id.
    if (statFields(pid)?.[19] !== fields[19]) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
}

interface StartedChild {
  child: ChildProcess;
  recentOutput(): string;
}

/** Spawns a child and resolves once its output (stdout or stderr) matches `ready`. */
async function spawnUntil(label: string, command: string, args: string[], ready: RegExp): Promise<StartedChild> {
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-KEPT_OUTPUT_CHARS);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} was not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      const onData = (): void => {
        if (ready.test(output)) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          child.stderr!.off('data', onData);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${label} exited before it was ready (code ${code}, signal ${signal})`));
      });
    });
  } catch (error) {
    await stopChild(child);
    throw new Error(`${(error as Error).message}\n--- ${label} output ---\n${output}`);
  }
  return { child, recentOutput: () => output };
}

/** Node's flags for a server: CPU profiling when asked for, and any given (inherited by a cluster's forked children). */
function nodeFlags(options: TargetOptions): string[] {
  const profiling = options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`];
  return [...profiling, ...(options.nodeFlags ?? [])];
}

/**
 * dynalite in memory (`dynalite`), or on disk (`dynalite-disk`: LevelDB files through `level`, no
 * fsync, as a one-process store without replication would keep them).
 */
async function startDynalite(name: 'dynalite' | 'dynalite-disk', options: TargetOptions): Promise<RunningTarget> {
  const port = await freePort(HOST);
  const cli = path.join(REPO_ROOT, 'node_modules/dynalite/cli.js');
  const dataDir = name === 'dynalite-disk' ? await mkdtemp(path.join(os.tmpdir(), 'shoal-bench-dynalite-')) : undefined;
  // Tables become ACTIVE at once instead of after the default 500 ms.
  const args = [cli, '--host', HOST, '--port', String(port), '--createTableMs', '0', '--deleteTableMs', '0', '--updateTableMs', '0'];
  if (dataDir !== undefined) args.push('--path', dataDir);
  const removeData = async (): Promise<void> => {
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  };
  let started: StartedChild;
  try {
    started = await spawnUntil(name, process.execPath, [...nodeFlags(options), ...args], /listening/i);
  } catch (error) {
    await removeData();
    throw error;
  }
  return {
    name,
    protocol: 'dynamodb',
    endpoint: { host: HOST, port },
    description: dataDir === undefined ? 'dynalite 4, in memory' : `dynalite 4, LevelDB in ${dataDir} (no fsync)`,
    recentOutput: started.recentOutput,
    cpuSeconds: () => processTreeCpuSeconds([started.child.pid]),
    stop: async () => {
      await stopChild(started.child);
      await removeData();
    },
  };
}

/** Whether `shoal dev` is the cluster form, with the one-process form behind `--single`. */
function devHasClusterMode(): boolean {
  const help = spawnSync(process.execPath, [SHOAL_MAIN, 'dev', '--help'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return /--single\b/.test(help.stdout ?? '');
}

/** `shoal dev` with `devArgs` on a fresh data directory, deleted again by `stop`. */
async function startShoalDev(
  name: 'shoal' | 'cluster',
  devArgs: string[],
  ready: RegExp,
  describe: (dataDir: string) => string,
  options: TargetOptions,
): Promise<RunningTarget> {
  if (!existsSync(SHOAL_MAIN)) throw new Error(`Shoal's CLI (${SHOAL_MAIN}) does not exist yet`);
  const port = await freePort(HOST);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `shoal-bench-${name}-`));
  let started: StartedChild;
  try {
    const args = [...nodeFlags(options), SHOAL_MAIN, 'dev', ...devArgs, '--host', HOST, '--port', String(port), '--data-dir', dataDir];
    started = await spawnUntil(name, process.execPath, args, ready);
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    name,
    protocol: 'dynamodb',
    endpoint: { host: HOST, port },
    description: describe(dataDir),
    recentOutput: started.recentOutput,
    cpuSeconds: () => processTreeCpuSeconds([started.child.pid]),
    // The one-process engine's threads (the cluster's `shoal dev` replaces this with its processes' roles).
    cpuSecondsByRole: () => threadCpuSeconds(started.child.pid),
    stop: async () => {
      await stopChildAndDescendants(started.child);
      if (options.keepData === true) console.log(`${name}: data and logs kept in ${dataDir}`);
      else await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * CPU seconds of one process's threads by what they do: `main` (the event loop), `workers` (worker
 * threads' event loops, when there are any) and `other` (V8's GC helpers, libuv's pool, LevelDB's
 * compactions), from Linux's per-thread run times; undefined elsewhere. Per-thread CPU tells which
 * thread a change made cheaper, which a loaded machine's ops/s cannot.
 */
function threadCpuSeconds(pid: number | undefined): Record<string, number> | undefined {
  if (pid === undefined) return undefined;
  const seconds: Record<string, number> = { main: 0, other: 0 };
  try {
    for (const thread of readdirSync(`/proc/${pid}/task`)) {
      const name = readFileSync(`/proc/${pid}/task/${thread}/comm`, 'utf8').trim();
      const role = name === 'MainThread' ? 'main' : name === 'WorkerThread' ? 'workers' : 'other';
      seconds[role] = (seconds[role] ?? 0) + Number(readFileSync(`/proc/${pid}/task/${thread}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
    }
  } catch {
    return undefined; // not Linux, or the process (or a thread) went away while being read
  }
  return seconds;
}

function startShoal(options: TargetOptions): Promise<RunningTarget> {
  const single = [...(devHasClusterMode() ? ['--single'] : []), ...(options.shoalFlags ?? [])];
  return startShoalDev('shoal', single, /listening/i, (dataDir) => `shoal dev ${single.join(' ')}, one process, data in ${dataDir}`, options);
}

/** The children `shoal dev` lists once ready: `node    1  127.0.0.1:7001  ops 127.0.0.1:9101  pid 1234`. */
function devChildren(output: string): Array<{ role: string; opsPort: number; pid: number }> {
  return [...output.matchAll(/^(node|router)\s+\d+\s+\S+\s+ops \S+:(\d+)\s+pid (\d+)/gm)].map((match) => ({
    role: match[1],
    opsPort: Number(match[2]),
    pid: Number(match[3]),
  }));
}

/** A counter's value in a Prometheus text exposition, summed over its label sets. */
function promCounter(text: string, name: string): number {
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(match[1]);
  return sum;
}

/** The sum over `texts` of the samples of `name` that carry the label pair `label` (among others, e.g. node_id). */
function promSample(texts: readonly string[], name: string, label: string): number {
  let sum = 0;
  for (const text of texts) {
    for (const row of text.split('\n')) {
      if (!row.startsWith(`${name}{`)) continue;
      const close = row.indexOf('} ');
      if (row.slice(name.length + 1, close).split(',').includes(label)) sum += Number(row.slice(close + 2));
    }
  }
  return sum;
}

/** Capacity units a second no bench reaches. */
const UNLIMITED_UNITS = 1_000_000_000;

async function startCluster(options: TargetOptions): Promise<RunningTarget> {
  if (!devHasClusterMode()) throw new Error('`shoal dev` has no cluster mode yet (no --single in `shoal dev --help`)');
  // dynalite and etcd admit every request: the partitions' DynamoDB-like admission limits (1,000 write
  // units a second, 30 s of burst) would throttle a run longer than the burst, and measure them, not the path.
  const limits = ['--read-units-per-partition', String(UNLIMITED_UNITS), '--write-units-per-partition', String(UNLIMITED_UNITS)];
  const target = await startShoalDev(
    'cluster',
    limits,
    /shoal dev ready/i,
    (dataDir) => `shoal dev, 3 storage node processes + 1 router (each write replicated to 3, fsync before the answer), partition limits lifted, data in ${dataDir}`,
    options,
  );
  const children = devChildren(target.recentOutput());
  const byRole = (measure: (roots: number[]) => number | undefined): Record<string, number> | undefined => {
    const router = measure(children.filter((child) => child.role === 'router').map((child) => child.pid));
    const nodes = measure(children.filter((child) => child.role === 'node').map((child) => child.pid));
    return router === undefined || nodes === undefined ? undefined : { router, nodes };
  };
  return {
    ...target,
    cpuSecondsByRole: () => byRole(processTreeCpuSeconds),
    pageFaultsByRole: () => byRole(processTreePageFaults),
    raftCounters: async () => {
      try {
        const texts = await Promise.all(
          children.map(async (child) => (await fetch(`http://${HOST}:${child.opsPort}/metrics`, { signal: AbortSignal.timeout(5_000) })).text()),
        );
        // Node and router metrics have their own prefixes: summing every process's text counts each once.
        const sum = (name: string): number => texts.reduce((total, text) => total + promCounter(text, name), 0);
        return {
          leadersElected: sum('shoal_node_raft_leaders_elected_total'),
          leadersLost: sum('shoal_node_raft_leaders_lost_total'),
          tickStalls: sum('shoal_node_raft_tick_stalls_total'),
          partitionSplits: sum('shoal_node_partition_splits_total'),
          routerRetries: sum('shoal_router_node_retries_total'),
          notLeader: sum('shoal_router_not_leader_redirects_total'),
          staleEpoch: sum('shoal_router_stale_epoch_redirects_total'),
          keyOutOfRange: sum('shoal_router_key_out_of_range_redirects_total'),
          unreachable: sum('shoal_router_unreachable_node_total'),
          nodeMapBehind: sum('shoal_router_node_map_behind_total'),
          partitionNotFound: sum('shoal_router_partition_not_found_total'),
          mapRefreshes: sum('shoal_router_map_refreshes_total'),
          raftFsyncs: sum('shoal_node_raft_log_fsync_duration_seconds_count'),
          raftFsyncsOver25ms:
            sum('shoal_node_raft_log_fsync_duration_seconds_count') - promSample(texts, 'shoal_node_raft_log_fsync_duration_seconds_bucket', 'le="0.025"'),
          raftRounds: sum('shoal_node_raft_rounds_total'),
          raftLogBatches: sum('shoal_node_raft_log_batches_total'),
          raftEntriesApplied: sum('shoal_node_raft_entries_applied_total'),
          raftMessagesSent: sum('shoal_node_transport_messages_sent_total'),
        };
      } catch {
        return undefined;
      }
    },
  };
}

/** Debian's etcd-server, installed when missing (as root, or through sudo). */
function ensureEtcd(): void {
  if (existsSync(ETCD)) return;
  console.log(`${ETCD} is missing: installing Debian's etcd-server`);
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? 'apt-get' : 'sudo';
  const args = asRoot ? ['install', '-y', 'etcd-server'] : ['apt-get', 'install', '-y', 'etcd-server'];
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.status !== 0 || !existsSync(ETCD)) throw new Error(`could not install etcd-server (${command} ${args.join(' ')} exited ${result.status})`);
}

interface EtcdStatus {
  header?: { member_id?: string };
  leader?: string;
}

/** etcd's maintenance status of one member, through its JSON gateway; undefined while it does not answer. */
async function etcdStatus(clientUrl: string): Promise<EtcdStatus | undefined> {
  try {
    const response = await fetch(`${clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2_000) });
    if (response.status !== 200) return undefined;
    return (await response.json()) as EtcdStatus;
  } catch {
    return undefined;
  }
}

/**
 * Three etcd members on loopback, each with its own temporary data directory, defaults otherwise
 * (fsync of its WAL before every answer, like Shoal's cluster). The load goes to the leader.
 */
async function startEtcd(): Promise<RunningTarget> {
  ensureEtcd();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'shoal-bench-etcd-'));
  const ports = await freePorts(2 * ETCD_MEMBERS, HOST);
  const members = Array.from({ length: ETCD_MEMBERS }, (_, index) => ({
    name: `m${index + 1}`,
    clientUrl: `http://${HOST}:${ports[2 * index]}`,
    peerUrl: `http://${HOST}:${ports[2 * index + 1]}`,
  }));
  const initialCluster = members.map((member) => `${member.name}=${member.peerUrl}`).join(',');
  const started: StartedChild[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map(({ child }) => stopChild(child)));
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    // A member reports "ready to serve" only once the cluster has a leader, so start all before waiting.
    const starting = members.map((member) =>
      spawnUntil(
        `etcd ${member.name}`,
        ETCD,
        [
          '--name', member.name,
          '--data-dir', path.join(dataDir, member.name),
          '--listen-client-urls', member.clientUrl,
          '--advertise-client-urls', member.clientUrl,
          '--listen-peer-urls', member.peerUrl,
          '--initial-advertise-peer-urls', member.peerUrl,
          '--initial-cluster', initialCluster,
          '--initial-cluster-state', 'new',
          '--initial-cluster-token', path.basename(dataDir),
        ],
        /ready to serve client requests/i,
      ).then((child) => {
        started.push(child);
        return child;
      }),
    );
    const results = await Promise.allSettled(starting);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure !== undefined) throw (failure as PromiseRejectedResult).reason;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let leader: (typeof members)[number] | undefined;
    while (leader === undefined) {
      const statuses = await Promise.all(members.map((member) => etcdStatus(member.clientUrl)));
      leader = members.find((_, index) => {
        const status = statuses[index];
        return status?.leader !== undefined && status.leader !== '0' && status.leader === status.header?.member_id;
      });
      if (leader !== undefined) break;
      if (Date.now() > deadline) throw new Error(`etcd elected no leader within ${READY_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const url = new URL(leader.clientUrl);
    const version = spawnSync(ETCD, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? 'etcd';
    return {
      name: 'etcd',
      protocol: 'etcd',
      endpoint: { host: url.hostname, port: Number(url.port) },
      description: `${version}, ${ETCD_MEMBERS} members, load sent to the leader ${leader.name}, data in ${dataDir}`,
      recentOutput: () => started.map((child) => child.recentOutput()).join('\n'),
      cpuSeconds: () => processTreeCpuSeconds(started.map(({ child }) => child.pid)),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function startTarget(name: TargetName, options: TargetOptions): Promise<RunningTarget> {
  switch (name) {
    case 'shoal':
      return startShoal(options);
    case 'dynalite':
    case 'dynalite-disk':
      return startDynalite(name, options);
    case 'cluster':
      return startCluster(options);
    case 'etcd':
      return startEtcd();
  }
}
