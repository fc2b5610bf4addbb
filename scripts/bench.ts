/**
 * Load benchmark: the same workloads against Shoal's single node, dynalite, Shoal's 3-node cluster and
 * a 3-member etcd, each started here as child processes on loopback with temporary data, then the
 * ratios. All targets see the same client, the same settings and the same key sequence.
 *
 *   npm run bench -- put,get --targets shoal,dynalite                  issue 2: single node vs dynalite
 *   npm run bench -- put,get,get-strong                                 issue 4: every target, same run
 *   npm run bench -- [workloads] [--targets shoal,dynalite,dynalite-disk,cluster,etcd] [--concurrency 64]
 *                    [--connections 64] [--duration 10] [--warmup 2] [--item-size 1024] [--keys 10000]
 *                    [--rounds 1] [--cpu-prof <dir>] [--timeline] [--keep-data] [--shoal-flags="<flags>"]
 *                    [--node-flags="<flags>"]
 *   npm run bench -- raft [...]      delegates to scripts/bench-raft.ts
 *   npm run bench -- split [...]     delegates to scripts/bench-split.ts (splitting off vs on)
 *
 * Targets:
 *   shoal     `shoal dev --single` (before the cluster CLI: `shoal dev`): router and storage engine in
 *             one process, LevelDB without fsync per write (the default of `shoal dev`).
 *   dynalite  dynalite 4 (npm), in memory.
 *   dynalite-disk  the same with its LevelDB files on disk (`--path <tmp>`), no fsync.
 *   cluster   `shoal dev --data-dir <tmp>`: 3 `shoal node` processes + 1 `shoal router`; every write
 *             replicated to 3 Raft replicas, fsync before the answer; the partitions' admission limits
 *             lifted (the other targets have none).
 *   etcd      Debian's etcd-server (installed with apt-get when /usr/bin/etcd is missing), 3 members,
 *             requests through the leader's v3 JSON gateway: put = /v3/kv/put, get = /v3/kv/range with
 *             serializable (any member's state), get-strong = linearizable /v3/kv/range. No Query.
 *
 * Workloads: put (PutItem), get (GetItem, eventually consistent), get-strong (GetItem with
 * ConsistentRead), query (Query on one key), mixed (half get, half put).
 *
 * The load generator (scripts/bench/pipelined-http.ts) is a closed loop over raw TCP: `--concurrency`
 * requests in flight, spread over `--connections` keep-alive connections (by default one each, like an
 * SDK's pool; pipelined when fewer, which is cheaper for the client but serializes the requests of a
 * connection on servers that answer them one at a time, such as etcd's Go HTTP server), request bytes
 * built before the run, responses parsed for status and length only;
 * every non-200 answer counts as an error. It shares the machine's cores with the servers, so its
 * CPU per request is printed next to theirs (server CPU sums every process of the target).
 */
import { seededRandom } from '@shoal/linearizability';
import { SPLIT_TAGS } from '@shoal/meta';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDbHttpClient } from './bench/dynamodb-http.ts';
import { percentile, runLoad } from './bench/load.ts';
import type { LoadResult } from './bench/load.ts';
import { drivePipelined } from './bench/pipelined-http.ts';
import { TARGET_NAMES, startTarget, stopAllTargets } from './bench/targets.ts';
import type { RunningTarget, TargetName } from './bench/targets.ts';
import {
  WORKLOAD_NAMES,
  awaitWritable,
  benchTable,
  createTable,
  needsPreload,
  preloadRequests,
  supports,
  workloadRequests,
} from './bench/workloads.ts';
import type { BenchTable, WorkloadName } from './bench/workloads.ts';
import { formatTable } from './bench/table.ts';

const USAGE = `usage: npm run bench -- [workloads] [options]
  workloads            comma-separated: ${WORKLOAD_NAMES.join(', ')} (default put,get); or "raft" for scripts/bench-raft.ts, "split" for scripts/bench-split.ts
  --workload <list>    the same, as an option
  --targets <list>     ${TARGET_NAMES.join(',')} (default all)
  --concurrency <n>    requests in flight (default 64)
  --connections <n>    TCP connections carrying them, pipelined when fewer (default: the concurrency)
  --duration <s>       measured seconds per workload (default 10)
  --warmup <s>         unmeasured seconds before each workload (default 2)
  --item-size <bytes>  item size (default 1024)
  --keys <n>           key space; pre-loaded for reads (default 10000)
  --max-requests <n>   cap per phase (default 10000000)
  --rounds <n>         alternate the targets this many times and pool the results, which evens out
                       load from other processes on a shared machine (default 1)
  --cpu-prof <dir>     write V8 CPU profiles of the Node servers into <dir>
  --shoal-flags=<f>    extra flags of the shoal target's \`shoal dev --single\`, e.g. "--sync"
  --node-flags=<f>     extra Node flags of the Shoal targets' processes (a cluster's nodes and router
                       inherit them), e.g. "--max-semi-space-size=16"
  --no-split           cluster: tag the bench table shoal:split=off, so no partition splits by heat
                       mid-run (stable comparisons of CPU per request; the default run splits once)
  --keep-data          leave the Shoal targets' data directories (with a cluster's logs) in place
  --timeline           print each measured phase second by second (ops, p99, max): a tail from one
                       stall shows as one slow second; on a cluster, with the events of that second
                       (a split, leader changes, router redirects, slow fsyncs: its /metrics read each second)`;

/** Runs scripts/<name> with the rest of the arguments (its own options) and exits with its status. */
function delegateTo(name: string, args: string[]): never {
  const script = path.join(import.meta.dirname, name);
  if (!existsSync(script)) {
    console.error(`scripts/${name} does not exist yet`);
    process.exit(1);
  }
  const result = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

function parseList<T extends string>(text: string, allowed: readonly T[], what: string): T[] {
  const items = text.split(',').map((item) => item.trim()).filter((item) => item !== '');
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) throw new Error(`unknown ${what} "${item}" (expected ${allowed.join(', ')})`);
  }
  if (items.length === 0) throw new Error(`no ${what} given`);
  return items as T[];
}

function positiveNumber(text: string, what: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${what} must be a positive number, got "${text}"`);
  return value;
}

interface Measurement {
  target: TargetName;
  workload: WorkloadName;
  result: LoadResult;
  /** The 1-minute load average right after the measurement (pooled: the mean of the rounds'). */
  loadAverage: number;
}

/** One measurement per target and workload: the rounds' requests, time and latencies together. */
function poolRounds(measurements: Measurement[]): Measurement[] {
  const pooled = new Map<string, Measurement[]>();
  for (const measurement of measurements) {
    const key = `${measurement.target}/${measurement.workload}`;
    pooled.set(key, [...(pooled.get(key) ?? []), measurement]);
  }
  return [...pooled.values()].map((runs) => ({
    target: runs[0].target,
    workload: runs[0].workload,
    loadAverage: runs.reduce((sum, run) => sum + run.loadAverage, 0) / runs.length,
    result: {
      ops: runs.reduce((sum, run) => sum + run.result.ops, 0),
      errors: runs.reduce((sum, run) => sum + run.result.errors, 0),
      errorSample: runs.find((run) => run.result.errorSample !== undefined)?.result.errorSample,
      seconds: runs.reduce((sum, run) => sum + run.result.seconds, 0),
      serverCpuSeconds: runs.some((run) => run.result.serverCpuSeconds === undefined)
        ? undefined
        : runs.reduce((sum, run) => sum + run.result.serverCpuSeconds!, 0),
      clientCpuSeconds: runs.reduce((sum, run) => sum + run.result.clientCpuSeconds, 0),
      // The rounds' seconds one after another.
      timeline: runs.flatMap((run) => run.result.timeline),
      latenciesMs: Float64Array.from(runs.flatMap((run) => [...run.result.latenciesMs])).sort(),
    },
  }));
}

const load = (): string => os.loadavg().map((value) => value.toFixed(2)).join(' ');
const ms = (value: number): string => (Number.isNaN(value) ? '-' : value.toFixed(2));
const microsPerOp = (cpuSeconds: number | undefined, ops: number): string =>
  cpuSeconds === undefined || ops === 0 ? '-' : ((cpuSeconds * 1e6) / ops).toFixed(0);

/** A cluster's CPU seconds and page faults by role and Raft event counts so far; undefined for other targets. */
async function probeTarget(target: RunningTarget): Promise<Record<string, number> | undefined> {
  const cpu = target.cpuSecondsByRole?.();
  const faults = target.pageFaultsByRole?.();
  const raft = await target.raftCounters?.();
  if (cpu === undefined && raft === undefined) return undefined;
  return {
    ...Object.fromEntries(Object.entries(cpu ?? {}).map(([role, seconds]) => [`cpu:${role}`, seconds])),
    ...Object.fromEntries(Object.entries(faults ?? {}).map(([role, count]) => [`faults:${role}`, count])),
    ...(raft ?? {}),
  };
}

/** The measured phase's share of the probed totals: CPU µs per request and page faults per second by role, Raft events per minute. */
function describeProbed(probed: Record<string, number>, ops: number, seconds: number): string {
  return Object.entries(probed)
    .map(([name, value]) =>
      name.startsWith('cpu:')
        ? `${name.slice(4)} cpu ${microsPerOp(value, ops)} µs/op`
        : name.startsWith('faults:')
          ? `${name.slice(7)} page faults ${(value / seconds).toFixed(0)}/s`
          : `${name} ${value} (${((value * 60) / seconds).toFixed(1)}/min)`,
    )
    .join(', ');
}

/** Creates the table (DynamoDB targets) and writes every key once. */
async function prepare(
  target: RunningTarget,
  table: BenchTable,
  concurrency: number,
  connections: number,
  preload: boolean,
  tags: Readonly<Record<string, string>>,
): Promise<void> {
  if (target.protocol === 'dynamodb') {
    const client = new DynamoDbHttpClient(target.endpoint, 1);
    try {
      await createTable(client, table, tags);
      await awaitWritable(client, table);
    } finally {
      client.close();
    }
  }
  if (!preload) return;
  const started = performance.now();
  const loaded = await drivePipelined(target.endpoint, preloadRequests(target.protocol, target.endpoint, table), {
    concurrency,
    connections,
    durationMs: Number.POSITIVE_INFINITY,
    maxRequests: table.keyCount,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${target.name}: pre-loaded ${table.keyCount - loaded.errors} of ${table.keyCount} items in ${seconds} s`);
  // A key left out reads as absent (still a 200): the run goes on, with the failure on record.
  if (loaded.errors > 0) console.log(`  ${loaded.errors} pre-load writes failed, first: ${loaded.errorSample}`);
}

/** Ratios of the first target to the second, for each workload both ran: the pairs the issues ask about. */
const RATIO_PAIRS: readonly [TargetName, TargetName][] = [
  ['shoal', 'dynalite'],
  ['cluster', 'dynalite'],
  ['cluster', 'dynalite-disk'],
  ['cluster', 'etcd'],
];

function ratioRows(pooled: Measurement[], workloads: WorkloadName[]): string[][] {
  const ratio = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) : '-');
  return RATIO_PAIRS.flatMap(([first, second]) =>
    workloads.flatMap((workload) => {
      const a = pooled.find((m) => m.target === first && m.workload === workload)?.result;
      const b = pooled.find((m) => m.target === second && m.workload === workload)?.result;
      if (a === undefined || b === undefined) return [];
      return [
        [
          `${first} / ${second}`,
          workload,
          ratio(a.ops / a.seconds, b.ops / b.seconds),
          ratio(percentile(a.latenciesMs, 0.5), percentile(b.latenciesMs, 0.5)),
          ratio(percentile(a.latenciesMs, 0.99), percentile(b.latenciesMs, 0.99)),
          a.serverCpuSeconds === undefined || b.serverCpuSeconds === undefined
            ? '-'
            : ratio(a.serverCpuSeconds / a.ops, b.serverCpuSeconds / b.ops),
        ],
      ];
    }),
  );
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'raft') delegateTo('bench-raft.ts', argv.slice(1));
  if (argv[0] === 'split') delegateTo('bench-split.ts', argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workload: { type: 'string' },
      targets: { type: 'string', default: TARGET_NAMES.join(',') },
      concurrency: { type: 'string', default: '64' },
      connections: { type: 'string' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      'item-size': { type: 'string', default: '1024' },
      keys: { type: 'string', default: '10000' },
      'max-requests': { type: 'string', default: '10000000' },
      rounds: { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
      'shoal-flags': { type: 'string' },
      'node-flags': { type: 'string' },
      timeline: { type: 'boolean', default: false },
      'keep-data': { type: 'boolean', default: false },
      'no-split': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const workloads = parseList(values.workload ?? (positionals.join(',') || 'put,get'), WORKLOAD_NAMES, 'workload');
  const targets = parseList(values.targets, TARGET_NAMES, 'target');
  const concurrency = Math.round(positiveNumber(values.concurrency, 'concurrency'));
  // One request in flight per connection by default, as an SDK's connection pool sends them: servers
  // that answer a connection's pipelined requests one at a time (Go's net/http, so etcd) are not held back.
  const connections = values.connections === undefined ? concurrency : Math.min(concurrency, Math.round(positiveNumber(values.connections, 'connections')));
  const durationMs = positiveNumber(values.duration, 'duration') * 1000;
  const warmupMs = values.warmup === '0' ? 0 : positiveNumber(values.warmup, 'warmup') * 1000;
  const itemSize = Math.round(positiveNumber(values['item-size'], 'item-size'));
  const keyCount = Math.round(positiveNumber(values.keys, 'keys'));
  const maxRequests = Math.round(positiveNumber(values['max-requests'], 'max-requests'));
  const rounds = Math.round(positiveNumber(values.rounds, 'rounds'));
  const cpuProfileDir = values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']);
  const table = benchTable('bench', keyCount, itemSize);
  const shoalFlags = values['shoal-flags']?.split(/\s+/).filter((flag) => flag !== '');
  const nodeFlags = values['node-flags']?.split(/\s+/).filter((flag) => flag !== '');

  console.log(`node ${process.version} on ${os.type()} ${os.arch()}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'})`);
  console.log(`load average at start: ${load()}`);
  console.log(
    `workloads ${workloads.join(',')}; concurrency ${concurrency} over ${connections} connection(s); ` +
      `${durationMs / 1000} s measured after ${warmupMs / 1000} s warm-up; items ${itemSize} B; ${keyCount} keys; ${rounds} round(s)`,
  );

  const measurements: Measurement[] = [];
  let failed = false;
  const schedule = Array.from({ length: rounds }, () => targets).flat();
  for (const name of schedule) {
    let target: RunningTarget;
    try {
      target = await startTarget(name, { cpuProfileDir, keepData: values['keep-data'], shoalFlags, nodeFlags });
    } catch (error) {
      console.error(`\n${name}: could not start: ${(error as Error).message}`);
      failed = true;
      continue;
    }
    try {
      console.log(`\n${name}: ${target.description}, http://${target.endpoint.host}:${target.endpoint.port}`);
      const runnable = workloads.filter((workload) => supports(target.protocol, workload));
      const tags: Record<string, string> = name === 'cluster' && values['no-split'] ? { [SPLIT_TAGS.enabled]: 'off' } : {};
      await prepare(target, table, concurrency, connections, runnable.some(needsPreload), tags);
      for (const workload of runnable) {
        // Seeded per run, so every target sees the same key sequence.
        const random = seededRandom(keyCount);
        const result = await runLoad(target.endpoint, workloadRequests(workload, target.protocol, target.endpoint, table, random), {
          concurrency,
          connections,
          warmupMs,
          durationMs,
          maxRequests,
          serverCpuSeconds: () => target.cpuSeconds(),
          probe: () => probeTarget(target),
          probeEverySecond: values.timeline,
        });
        measurements.push({ target: name, workload, result, loadAverage: os.loadavg()[0] });
        console.log(`${name} ${workload}: ${(result.ops / result.seconds).toFixed(0)} ops/s, load average ${load()}`);
        if (result.probed !== undefined) console.log(`  ${describeProbed(result.probed, result.ops, result.seconds)}`);
        if (result.errorSample !== undefined) console.log(`  first error: ${result.errorSample}`);
        if (values.timeline) {
          for (const [second, { ops, p99Ms, maxMs, events }] of result.timeline.entries()) {
            const happened = events === undefined ? '' : `  (${Object.entries(events).map(([event, count]) => `${event} +${count}`).join(', ')})`;
            console.log(`  second ${String(second).padStart(3)}: ${String(ops).padStart(6)} ops, p99 ${ms(p99Ms)} ms, max ${ms(maxMs)} ms${happened}`);
          }
        }
      }
    } catch (error) {
      console.error(`${name}: ${(error as Error).message}`);
      const output = target.recentOutput().trim();
      if (output !== '') console.error(`--- ${name} output (last lines) ---\n${output}`);
      failed = true;
    } finally {
      await target.stop();
    }
  }

  const pooled = poolRounds(measurements);
  console.log('');
  console.log(
    formatTable(
      ['target', 'workload', 'ops', 'ops/s', 'errors', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'server cpu µs/op', 'client cpu µs/op', 'load'],
      pooled.map(({ target, workload, result, loadAverage }) => [
        target,
        workload,
        String(result.ops),
        (result.ops / result.seconds).toFixed(0),
        String(result.errors),
        ms(percentile(result.latenciesMs, 0.5)),
        ms(percentile(result.latenciesMs, 0.99)),
        ms(percentile(result.latenciesMs, 0.999)),
        ms(percentile(result.latenciesMs, 1)),
        microsPerOp(result.serverCpuSeconds, result.ops),
        microsPerOp(result.clientCpuSeconds, result.ops),
        loadAverage.toFixed(1),
      ]),
    ),
  );
  const ratios = ratioRows(pooled, workloads);
  if (ratios.length > 0) {
    console.log('\nRatios (throughput: higher is better for the first; latency and CPU per request: lower is better)');
    console.log(formatTable(['targets', 'workload', 'ops/s', 'p50', 'p99', 'server cpu/op'], ratios));
  }
  console.log(`\nload average at end: ${load()}`);
  return failed ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers`);
    void stopAllTargets().finally(() => process.exit(130));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    console.error((error as Error).message);
    console.error(USAGE);
    await stopAllTargets();
    process.exitCode = 1;
  },
);
