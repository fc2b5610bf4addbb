/**
 * Load benchmark: the same DynamoDB workloads against Shoal (single node, `shoal dev`) and dynalite,
 * each started here as a child process, then the ratio Shoal/dynalite.
 *
 *   npm run bench -- [put,get,query,mixed] [--targets shoal,dynalite] [--concurrency 64]
 *                    [--duration 10] [--warmup 2] [--item-size 1024] [--keys 10000]
 *   npm run bench -- raft [...]      delegates to scripts/bench-raft.ts
 */
import { seededRandom } from '@shoal/linearizability';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDbHttpClient } from './bench/dynamodb-http.ts';
import { percentile, runLoad } from './bench/load.ts';
import type { LoadResult } from './bench/load.ts';
import { TARGET_NAMES, startTarget, stopAllTargets } from './bench/targets.ts';
import type { TargetName } from './bench/targets.ts';
import { WORKLOAD_NAMES, benchTable, createTable, needsPreload, nextRequest, preload } from './bench/workloads.ts';
import type { WorkloadName } from './bench/workloads.ts';
import { formatTable } from './bench/table.ts';

const USAGE = `usage: npm run bench -- [workloads] [options]
  workloads            comma-separated: ${WORKLOAD_NAMES.join(', ')} (default put,get); or "raft" for scripts/bench-raft.ts
  --workload <list>    the same, as an option
  --targets <list>     ${TARGET_NAMES.join(',')} (default both)
  --concurrency <n>    requests in flight (default 64)
  --duration <s>       measured seconds per workload (default 10)
  --warmup <s>         unmeasured seconds before each workload (default 2)
  --item-size <bytes>  item size (default 1024)
  --keys <n>           key space; pre-loaded for reads (default 10000)
  --max-requests <n>   cap per phase (default 10000000)
  --rounds <n>         alternate the targets this many times and pool the results, which evens out
                       load from other processes on a shared machine (default 1)`;

function delegateToRaftBench(args: string[]): never {
  const script = path.join(import.meta.dirname, 'bench-raft.ts');
  if (!existsSync(script)) {
    console.error('scripts/bench-raft.ts does not exist yet');
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
    result: {
      ops: runs.reduce((sum, run) => sum + run.result.ops, 0),
      errors: runs.reduce((sum, run) => sum + run.result.errors, 0),
      errorSample: runs.find((run) => run.result.errorSample !== undefined)?.result.errorSample,
      seconds: runs.reduce((sum, run) => sum + run.result.seconds, 0),
      serverCpuSeconds: runs.some((run) => run.result.serverCpuSeconds === undefined)
        ? undefined
        : runs.reduce((sum, run) => sum + run.result.serverCpuSeconds!, 0),
      clientCpuSeconds: runs.reduce((sum, run) => sum + run.result.clientCpuSeconds, 0),
      latenciesMs: Float64Array.from(runs.flatMap((run) => [...run.result.latenciesMs])).sort(),
    },
  }));
}

const load = (): string => os.loadavg().map((value) => value.toFixed(2)).join(' ');
const ms = (value: number): string => (Number.isNaN(value) ? '-' : value.toFixed(2));
const microsPerOp = (cpuSeconds: number | undefined, ops: number): string =>
  cpuSeconds === undefined || ops === 0 ? '-' : ((cpuSeconds * 1e6) / ops).toFixed(0);

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'raft') delegateToRaftBench(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workload: { type: 'string' },
      targets: { type: 'string', default: TARGET_NAMES.join(',') },
      concurrency: { type: 'string', default: '64' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      'item-size': { type: 'string', default: '1024' },
      keys: { type: 'string', default: '10000' },
      'max-requests': { type: 'string', default: '10000000' },
      rounds: { type: 'string', default: '1' },
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
  const durationMs = positiveNumber(values.duration, 'duration') * 1000;
  const warmupMs = values.warmup === '0' ? 0 : positiveNumber(values.warmup, 'warmup') * 1000;
  const itemSize = Math.round(positiveNumber(values['item-size'], 'item-size'));
  const keyCount = Math.round(positiveNumber(values.keys, 'keys'));
  const maxRequests = Math.round(positiveNumber(values['max-requests'], 'max-requests'));
  const rounds = Math.round(positiveNumber(values.rounds, 'rounds'));
  const table = benchTable('bench', keyCount, itemSize);

  console.log(`node ${process.version} on ${os.type()} ${os.arch()}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'})`);
  console.log(`load average at start: ${load()}`);
  console.log(
    `workloads ${workloads.join(',')}; concurrency ${concurrency}; ${durationMs / 1000} s measured after ${warmupMs / 1000} s warm-up; ` +
      `items ${itemSize} B; ${keyCount} keys; ${rounds} round(s)`,
  );

  const measurements: Measurement[] = [];
  let failed = false;
  const schedule = Array.from({ length: rounds }, () => targets).flat();
  for (const name of schedule) {
    let target;
    try {
      target = await startTarget(name);
    } catch (error) {
      console.error(`\n${name}: could not start: ${(error as Error).message}`);
      failed = true;
      continue;
    }
    const client = new DynamoDbHttpClient(target.endpoint, concurrency);
    try {
      console.log(`\n${name}: ${target.description}, http://${target.endpoint.host}:${target.endpoint.port}`);
      await createTable(client, table);
      if (workloads.some(needsPreload)) {
        const started = performance.now();
        await preload(client, table, concurrency);
        console.log(`${name}: pre-loaded ${keyCount} items in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
      for (const workload of workloads) {
        // Seeded per run, so both targets see the same key sequence shape.
        const random = seededRandom(keyCount);
        const result = await runLoad(client, () => nextRequest(workload, table, random), {
          concurrency,
          warmupMs,
          durationMs,
          maxRequests,
          serverCpuSeconds: () => target.cpuSeconds(),
        });
        measurements.push({ target: name, workload, result });
        console.log(`${name} ${workload}: ${(result.ops / result.seconds).toFixed(0)} ops/s, load average ${load()}`);
        if (result.errorSample !== undefined) console.log(`  first error: ${result.errorSample}`);
      }
    } catch (error) {
      console.error(`${name}: ${(error as Error).message}`);
      const output = target.recentOutput().trim();
      if (output !== '') console.error(`--- ${name} output (last lines) ---\n${output}`);
      failed = true;
    } finally {
      client.close();
      await target.stop();
    }
  }

  const pooled = poolRounds(measurements);
  console.log('');
  console.log(
    formatTable(
      ['target', 'workload', 'ops', 'ops/s', 'errors', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'server cpu µs/op', 'client cpu µs/op'],
      pooled.map(({ target, workload, result }) => [
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
      ]),
    ),
  );
  const ratioRows = workloads.flatMap((workload) => {
    const shoal = pooled.find((m) => m.target === 'shoal' && m.workload === workload)?.result;
    const dynalite = pooled.find((m) => m.target === 'dynalite' && m.workload === workload)?.result;
    if (shoal === undefined || dynalite === undefined) return [];
    const ratio = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) : '-');
    return [
      [
        workload,
        ratio(shoal.ops / shoal.seconds, dynalite.ops / dynalite.seconds),
        ratio(percentile(shoal.latenciesMs, 0.5), percentile(dynalite.latenciesMs, 0.5)),
        ratio(percentile(shoal.latenciesMs, 0.99), percentile(dynalite.latenciesMs, 0.99)),
        shoal.serverCpuSeconds === undefined || dynalite.serverCpuSeconds === undefined
          ? '-'
          : ratio(shoal.serverCpuSeconds / shoal.ops, dynalite.serverCpuSeconds / dynalite.ops),
      ],
    ];
  });
  if (ratioRows.length > 0) {
    console.log('\nShoal / dynalite (throughput: higher is better for Shoal; latency and CPU per request: lower is better)');
    console.log(formatTable(['workload', 'ops/s', 'p50', 'p99', 'server cpu/op'], ratioRows));
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
