/**
 * Splitting off versus on, in one run (issue 6): the same write workloads against a 3-node cluster
 * (3 `shoal node` processes + 1 `shoal router`, started here on loopback with temporary data), once
 * with `--no-split` and once with the default split policy (heat: half a partition's write unit
 * limit for 10 s), each table starting as one partition. Every interval the heat tool's figures:
 * throughput and throttle rate; then a table comparing the first and the last seconds, and the time
 * splitting took to double the throughput.
 *
 *   npm run bench -- split [--workloads zipfian,hot-range] [--duration 45] [--write-units 20]
 *                          [--burst-seconds 1] [--concurrency 32] [--keys 10000] [--item-size 100] [--report-dir <dir>]
 *                          [--logs <dir>] [--modes off,on]
 *
 * The partition limit defaults to 20 write units a second instead of DynamoDB's 1,000 (and a burst
 * of 1 s instead of 30 s), so that one partition throttles at a rate the shared 2-core machine this
 * was written on sustains several times over (it served about 60-90 replicated writes a second under
 * a load average of 16-24); `--write-units 1000` runs DynamoDB's where the machine allows, and with
 * larger items (`--item-size 8000`: 8 write units a put) one partition reaches it at a rate this machine
 * serves.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseHeatArgs, renderFrame, runHeat, type HeatResult, type WorkloadKind } from '@shoal/heat';
import { answersReady, freePorts } from '@shoal/proto';

const HOST = '127.0.0.1';
const MAIN = path.resolve(import.meta.dirname, '..', 'packages', 'cli', 'src', 'main.ts');
const START_TIMEOUT_MS = 120_000;

const USAGE = `usage: npm run bench -- split [options]
  --workloads <list>     heat workloads, comma-separated (default zipfian,hot-range)
  --duration <s>         seconds per workload and mode (default 45)
  --write-units <n>      write units a second per partition (default 20; DynamoDB: 1000)
  --burst-seconds <s>    burst allowance of a partition (default 1)
  --concurrency <n>      client workers (default 32)
  --keys <n>             distinct keys of the workload (default 10000)
  --item-size <bytes>    size of each written item (default 100; a write unit per started KB)
  --report-dir <dir>     write each run's HTML heat report there
  --logs <dir>           keep the processes' logs there (split decisions: "partition_split", "hot_key")
  --modes <list>         off,on (default both)`;

interface Options {
  workloads: WorkloadKind[];
  durationS: number;
  writeUnits: number;
  burstSeconds: number;
  concurrency: number;
  keys: number;
  itemSize: number;
  reportDir: string | undefined;
  logDir: string | undefined;
  modes: boolean[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      workloads: { type: 'string', default: 'zipfian,hot-range' },
      duration: { type: 'string', default: '45' },
      'write-units': { type: 'string', default: '20' },
      'burst-seconds': { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '32' },
      keys: { type: 'string', default: '10000' },
      'item-size': { type: 'string', default: '100' },
      'report-dir': { type: 'string' },
      logs: { type: 'string' },
      modes: { type: 'string', default: 'off,on' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const positive = (text: string, name: string): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got "${text}"`);
    return value;
  };
  const workloads = values.workloads.split(',').map((w) => w.trim()).filter((w) => w !== '');
  // The heat tool's own parser judges the workload names.
  for (const workload of workloads) parseHeatArgs(['--endpoint', 'x:1', '--workload', workload]);
  return {
    workloads: workloads as WorkloadKind[],
    durationS: positive(values.duration, 'duration'),
    writeUnits: positive(values['write-units'], 'write-units'),
    burstSeconds: positive(values['burst-seconds'], 'burst-seconds'),
    concurrency: positive(values.concurrency, 'concurrency'),
    keys: positive(values.keys, 'keys'),
    itemSize: positive(values['item-size'], 'item-size'),
    reportDir: values['report-dir'],
    logDir: values.logs,
    modes: values.modes.split(',').map((mode) => {
      if (mode !== 'on' && mode !== 'off') throw new Error(`--modes: on or off, not ${mode}`);
      return mode === 'on';
    }),
  };
}

/** Children not yet stopped: killed outright if this process exits first. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts `shoal <args>` and resolves with the fields of its `listening` log line. */
function startShoal(args: string[], logFile: string | undefined): Promise<{ child: ChildProcess; listening: Record<string, unknown> }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (logFile !== undefined) child.stderr!.pipe(createWriteStream(logFile));
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`shoal ${args[0]} did not listen in ${START_TIMEOUT_MS} ms:\n${output.slice(-2_000)}`)), START_TIMEOUT_MS);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      // Only the start matters; later lines are dropped so that a long run keeps no log in memory.
      if (output.length > 1_000_000) output = output.slice(-100_000);
      for (const line of output.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        clearTimeout(timer);
        resolve({ child, listening: JSON.parse(line) as Record<string, unknown> });
        return;
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`shoal ${args[0]} exited (${signal ?? code}) before listening:\n${output.slice(-2_000)}`));
    });
  });
}

async function waitReady(opsPorts: number[]): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ready = await Promise.all(opsPorts.map((port) => answersReady(HOST, port)));
    if (ready.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error('the cluster did not get ready');
    await new Promise((done) => setTimeout(done, 250));
  }
}

interface Cluster {
  endpoint: string;
  meta: string[];
  stop(): Promise<void>;
}

async function startCluster(splitting: boolean, options: Options): Promise<Cluster> {
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'shoal-bench-split-'));
  const ports = await freePorts(3, HOST);
  const meta = ports.map((port) => `${HOST}:${port}`);
  const peers = meta.map((address, i) => `${i + 1}=${address}`).join(',');
  const limits = ['--write-units-per-partition', String(options.writeUnits), '--burst-seconds', String(options.burstSeconds)];
  const started: ChildProcess[] = [];
  const logFile = (name: string): string | undefined => (options.logDir === undefined ? undefined : path.join(options.logDir, `split-${splitting ? 'on' : 'off'}-${name}.log`));
  if (options.logDir !== undefined) await mkdir(options.logDir, { recursive: true });
  const stop = async (): Promise<void> => {
    await Promise.all(
      started.map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGKILL');
          }),
      ),
    );
    await rm(dataRoot, { recursive: true, force: true });
  };
  try {
    const nodes = await Promise.all(
      meta.map((address, i) =>
        startShoal(['node', '--node-id', String(i + 1), '--listen', address, '--data-dir', path.join(dataRoot, `node-${i + 1}`), '--meta-peers', peers, '--ops-port', '0', ...limits, ...(splitting ? [] : ['--no-split'])], logFile(`node-${i + 1}`)),
      ),
    );
    started.push(...nodes.map((n) => n.child));
    await waitReady(nodes.map((n) => Number(n.listening.opsPort)));
    const router = await startShoal(['router', '--meta', meta.join(','), '--port', '0', '--ops-port', '0'], logFile('router'));
    started.push(router.child);
    return { endpoint: String(router.listening.endpoint).replace(/^http:\/\//, ''), meta, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface Run {
  workload: WorkloadKind;
  splitting: boolean;
  result: HeatResult;
}

async function runWorkload(cluster: Cluster, workload: WorkloadKind, splitting: boolean, options: Options): Promise<Run> {
  const table = `bench_${workload.replace('-', '_')}`;
  const args = ['--endpoint', cluster.endpoint, '--meta', cluster.meta.join(','), '--table', table, '--workload', workload, '--reads', '0', '--item-size', String(options.itemSize)];
  args.push('--keys', String(options.keys), '--concurrency', String(options.concurrency), '--duration', `${options.durationS}s`, '--interval', '1s', '--no-live');
  if (options.reportDir !== undefined) args.push('--report', path.join(options.reportDir, `split-${splitting ? 'on' : 'off'}-${workload}.html`));
  const heat = parseHeatArgs(args);
  if (heat === 'help') throw new Error('unreachable');
  process.stdout.write(`  ${workload}, splitting ${splitting ? 'on' : 'off'}: `);
  const result = await runHeat(heat, { print: () => process.stdout.write('.') });
  process.stdout.write('\n');
  return { workload, splitting, result };
}

const mean = (values: number[]): number => (values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length);

/** Throughput and throttle rate over the figures between `fromS` and `toS` seconds into the run. */
function window(run: Run, fromS: number, toS: number): { okPerSecond: number; throttleRate: number } {
  const figures = run.result.figures.filter((f) => f.at > fromS * 1000 && f.at <= toS * 1000);
  const ok = figures.reduce((sum, f) => sum + f.okPerSecond, 0);
  const throttled = figures.reduce((sum, f) => sum + f.throttledPerSecond, 0);
  return { okPerSecond: mean(figures.map((f) => f.okPerSecond)), throttleRate: ok + throttled === 0 ? 0 : throttled / (ok + throttled) };
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((_, i) => Math.max(header[i].length, ...rows.map((row) => row[i].length)));
  return [pad(header, widths), ...rows.map((row) => pad(row, widths))].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const load = (): string => os.loadavg().map((v) => v.toFixed(2)).join(' ');
  console.log(
    `bench split: ${options.workloads.join(', ')}; ${options.durationS} s each; partitions admit ${options.writeUnits} write units/s (burst ${options.burstSeconds} s); ` +
      `${options.concurrency} workers, ${options.keys} keys, ${options.itemSize} B items, writes only; load average ${load()}`,
  );
  const runs: Run[] = [];
  for (const splitting of options.modes) {
    const cluster = await startCluster(splitting, options);
    try {
      for (const workload of options.workloads) runs.push(await runWorkload(cluster, workload, splitting, options));
    } finally {
      await cluster.stop();
    }
  }
  const d = options.durationS;
  const last = Math.min(10, d / 2);
  console.log(`\nload average after the runs: ${load()}\n`);
  console.log('throughput (ops/s) and throttle rate, in 5 s windows:');
  const windows = Array.from({ length: Math.ceil(d / 5) }, (_, i) => [i * 5, Math.min(d, i * 5 + 5)] as const);
  const series: string[][] = [];
  for (const workload of options.workloads) {
    for (const run of runs.filter((r) => r.workload === workload)) {
      const splitting = run.splitting;
      series.push([`${workload} ${splitting ? 'on' : 'off'}`, ...windows.map(([from, to]) => {
        const w = window(run, from, to);
        return `${w.okPerSecond.toFixed(0)} ${(w.throttleRate * 100).toFixed(0)}%`;
      })]);
    }
  }
  console.log(table(['run', ...windows.map(([from, to]) => `${from}-${to}s`)], series));
  console.log('');
  const rows: string[][] = [];
  for (const workload of options.workloads) {
    const off = runs.find((r) => r.workload === workload && !r.splitting);
    const offSteady = off === undefined ? undefined : window(off, d - last, d);
    for (const run of runs.filter((r) => r.workload === workload)) {
      const first = window(run, 0, 10);
      const end = window(run, d - last, d);
      const partitions = run.result.snapshots.at(-1)?.partitions.filter((p) => p.table === `bench_${workload.replace('-', '_')}`) ?? [];
      // When throughput (a 3 s moving mean) first reached twice the splitting-off run's steady state.
      const f = run.result.figures;
      const doubledAt =
        run.splitting && offSteady !== undefined ? f.findIndex((_, i) => i >= 2 && mean(f.slice(i - 2, i + 1).map((x) => x.okPerSecond)) >= 2 * offSteady.okPerSecond) : -1;
      rows.push([
        `${workload} splitting ${run.splitting ? 'on' : 'off'}`,
        first.okPerSecond.toFixed(0),
        `${(first.throttleRate * 100).toFixed(1)}%`,
        end.okPerSecond.toFixed(0),
        `${(end.throttleRate * 100).toFixed(1)}%`,
        offSteady === undefined ? '-' : `${(end.okPerSecond / Math.max(1e-9, offSteady.okPerSecond)).toFixed(2)}x`,
        String(run.result.summary.splits),
        String(partitions.length),
        String(new Set(partitions.map((p) => p.leader).filter((l) => l !== undefined)).size),
        run.splitting && offSteady !== undefined ? (doubledAt < 0 ? 'not within the run' : `${(f[doubledAt].at / 1000).toFixed(0)} s`) : '-',
      ]);
    }
  }
  console.log(
    table(['run', 'first 10s ops/s', 'throttled', `last ${last}s ops/s`, 'throttled', 'vs off', 'splits', 'partitions', 'leaders', '2x off reached at'], rows),
  );
  const lastOn = runs.filter((r) => r.splitting).at(-1);
  const snapshot = lastOn?.result.snapshots.at(-1);
  if (lastOn !== undefined && snapshot !== undefined) {
    console.log(`\nheat map at the end of ${lastOn.workload}, splitting on (shoal heat's terminal view):\n`);
    console.log(renderFrame({ title: `${lastOn.workload}, splitting on`, elapsedMs: snapshot.at, durationMs: d * 1000, figures: lastOn.result.figures.at(-1), snapshot, events: lastOn.result.events }, false));
  }
  if (options.reportDir !== undefined) console.log(`\nHTML reports in ${options.reportDir}`);
}

const interrupted = (): void => {
  for (const child of children) child.kill('SIGKILL');
  process.exit(130);
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
}
