/**
 * A heat run: workers drive the workload against the routers (closed loop, or paced to `rate`),
 * while every interval the run takes its figures (served, throttled, failed, p50/p99) and, with meta
 * peers, a look at the partitions (AdminService.Status) and what changed since the last one. The
 * live view is redrawn each interval; the HTML report is written at the end.
 */
import { writeFile } from 'node:fs/promises';
import { DynamoDbClient, type Outcome } from '@shoal/chaos';
import type { IntervalFigures, RunSummary } from './figures.ts';
import { LatencyHistogram } from './latency.ts';
import type { HeatOptions } from './options.ts';
import { renderReport } from './report.ts';
import { renderFrame, renderLine } from './terminal.ts';
import { ClusterWatcher, changes, type HeatEvent, type HeatSnapshot } from './watch.ts';
import { Workload, type PlannedRequest } from './workload.ts';

const REQUEST_TIMEOUT_MS = 10_000;
const TABLE_READY_TIMEOUT_MS = 60_000;
const THROTTLING_TYPES = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded']);
/**
 * A worker throttled waits before its next request, as the AWS SDKs do (their throttling backoff
 * doubles from about 25 ms up to 20 s; capped lower here so the run keeps measuring): 25 ms doubling
 * with each throttle in a row, at most 800 ms.
 */
const THROTTLE_BACKOFF_MS = 25;
const THROTTLE_BACKOFF_MAX_MS = 800;

export interface HeatIo {
  /** One line of output (summaries, non-live progress). */
  print(text: string): void;
  /** Replaces the live view with a new frame; absent: frames are not drawn. */
  draw?(frame: string): void;
  /** Ends the run early (Ctrl-C). */
  signal?: AbortSignal;
}

export interface HeatResult {
  summary: RunSummary;
  figures: IntervalFigures[];
  snapshots: HeatSnapshot[];
  events: HeatEvent[];
  reportPath: string | undefined;
}

/** Counts of the current interval, taken and reset by the sampler. */
class Tally {
  ok = 0;
  throttled = 0;
  errors = 0;
  latency = new LatencyHistogram();
}

export function describeRun(options: HeatOptions): string {
  if (options.watch) return 'watching';
  const workload = options.workload === 'zipfian' ? `zipfian(${options.skew})` : options.workload;
  const pace = options.rate === undefined ? `concurrency ${options.concurrency}` : `${options.rate} ops/s`;
  return `${workload} on ${options.table}, ${Math.round(options.reads * 100)}% reads, ${options.itemSize} B items, ${options.keys} keys, ${pace}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

async function ensureTable(client: DynamoDbClient, table: string): Promise<void> {
  const described = await client.send('DescribeTable', { TableName: table });
  if (described.kind === 'failed' && described.type === 'ResourceNotFoundException') {
    await client.call('CreateTable', {
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'N' },
      ],
    });
  } else if (described.kind !== 'ok') {
    throw new Error(`DescribeTable ${table}: ${described.kind === 'failed' ? `${described.type}: ${described.message}` : described.reason}`);
  }
  const deadline = Date.now() + TABLE_READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const body = await client.call('DescribeTable', { TableName: table });
    if ((body.Table as { TableStatus?: string } | undefined)?.TableStatus === 'ACTIVE') return;
    await new Promise((done) => setTimeout(done, 200));
  }
  throw new Error(`table ${table} not ACTIVE after ${TABLE_READY_TIMEOUT_MS / 1000} s`);
}

function request(table: string, planned: PlannedRequest, filler: string, consistent: boolean): { operation: string; input: unknown } {
  const key = { pk: { S: planned.key.pk }, sk: { N: String(planned.key.sk) } };
  if (planned.kind === 'read') return { operation: 'GetItem', input: { TableName: table, Key: key, ConsistentRead: consistent } };
  return { operation: 'PutItem', input: { TableName: table, Item: { ...key, data: { S: filler } } } };
}

export async function runHeat(options: HeatOptions, io: HeatIo): Promise<HeatResult> {
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  const watcher = options.meta.length > 0 ? new ClusterWatcher(options.meta) : undefined;
  const clients: DynamoDbClient[] = [];
  const startedAt = new Date();
  const title = describeRun(options);
  const figures: IntervalFigures[] = [];
  const snapshots: HeatSnapshot[] = [];
  const events: HeatEvent[] = [];
  const totals = { ok: 0, throttled: 0, errors: 0, latency: new LatencyHistogram() };
  let tally = new Tally();
  let started = performance.now();
  const elapsed = (): number => performance.now() - started;

  try {
    const workers: Promise<void>[] = [];
    if (!options.watch) {
      const setup = new DynamoDbClient({ endpoints: options.endpoints, preferred: 0, timeoutMs: REQUEST_TIMEOUT_MS });
      clients.push(setup);
      await ensureTable(setup, options.table);
      const workload = new Workload(options.workload, options, options.seed);
      // The item's other attributes take about 20 bytes.
      const filler = 'x'.repeat(Math.max(1, options.itemSize - 20));
      started = performance.now();
      for (let w = 0; w < options.concurrency; w++) {
        const client = new DynamoDbClient({ endpoints: options.endpoints, preferred: w, timeoutMs: REQUEST_TIMEOUT_MS });
        clients.push(client);
        workers.push(
          (async () => {
            const spacing = options.rate === undefined ? 0 : (options.concurrency * 1000) / options.rate;
            let nextAt = elapsed() + (spacing * w) / options.concurrency;
            let throttledInARow = 0;
            while (!stop.signal.aborted && elapsed() < options.durationMs) {
              if (spacing > 0) {
                await sleep(nextAt - elapsed(), stop.signal);
                nextAt = Math.max(nextAt + spacing, elapsed() - spacing);
                if (stop.signal.aborted || elapsed() >= options.durationMs) break;
              }
              const { operation, input } = request(options.table, workload.next(elapsed()), filler, options.consistentReads);
              const sent = performance.now();
              const outcome: Outcome = await client.send(operation, input);
              const took = performance.now() - sent;
              const throttled = outcome.kind === 'failed' && THROTTLING_TYPES.has(outcome.type);
              if (outcome.kind === 'ok') {
                tally.ok++;
                tally.latency.add(took);
              } else if (throttled) tally.throttled++;
              else tally.errors++;
              throttledInARow = throttled ? throttledInARow + 1 : 0;
              if (throttled && spacing === 0) await sleep(Math.min(THROTTLE_BACKOFF_MAX_MS, THROTTLE_BACKOFF_MS * 2 ** (throttledInARow - 1)), stop.signal);
            }
          })(),
        );
      }
    }

    let previous: HeatSnapshot | undefined;
    let lastSampleAt = 0;
    // Ticks on a fixed schedule, whatever a look at the cluster took.
    let nextTick = 0;
    while (!stop.signal.aborted && elapsed() < options.durationMs) {
      nextTick = Math.max(nextTick + options.intervalMs, elapsed());
      await sleep(Math.min(nextTick, options.durationMs) - elapsed(), stop.signal);
      const at = elapsed();
      const interval = tally;
      tally = new Tally();
      const spanSeconds = Math.max(0.001, (at - lastSampleAt) / 1000);
      lastSampleAt = at;
      let current: IntervalFigures | undefined;
      if (!options.watch) {
        const attempts = interval.ok + interval.throttled + interval.errors;
        current = {
          at,
          okPerSecond: interval.ok / spanSeconds,
          throttledPerSecond: interval.throttled / spanSeconds,
          errorsPerSecond: interval.errors / spanSeconds,
          throttleRate: attempts === 0 ? 0 : interval.throttled / attempts,
          p50Ms: interval.latency.percentile(0.5),
          p99Ms: interval.latency.percentile(0.99),
        };
        figures.push(current);
        totals.ok += interval.ok;
        totals.throttled += interval.throttled;
        totals.errors += interval.errors;
        totals.latency.merge(interval.latency);
      }
      let snapshot: HeatSnapshot | undefined;
      if (watcher !== undefined) {
        try {
          snapshot = await watcher.look(at);
          snapshots.push(snapshot);
          if (previous !== undefined) events.push(...changes(previous, snapshot));
          previous = snapshot;
        } catch (error) {
          io.print(`meta group not answering: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      if (options.live && io.draw !== undefined) io.draw(renderFrame({ title, elapsedMs: at, durationMs: options.durationMs, figures: current, snapshot, events }, true));
      else io.print(renderLine(at, current, snapshot));
    }
    stop.abort();
    await Promise.all(workers);
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
    watcher?.close();
    for (const client of clients) client.close();
  }

  const durationMs = elapsed();
  const attempts = totals.ok + totals.throttled + totals.errors;
  const summary: RunSummary = {
    durationMs,
    ok: totals.ok,
    throttled: totals.throttled,
    errors: totals.errors,
    okPerSecond: durationMs > 0 ? (totals.ok * 1000) / durationMs : 0,
    throttleRate: attempts === 0 ? 0 : totals.throttled / attempts,
    p50Ms: totals.latency.percentile(0.5),
    p99Ms: totals.latency.percentile(0.99),
    splits: events.filter((e) => e.kind === 'split').length,
    moves: events.filter((e) => e.kind === 'leader' || e.kind === 'replicas').length,
  };
  if (options.report !== undefined) await writeFile(options.report, renderReport({ title, startedAt, summary, figures, snapshots, events }));
  return { summary, figures, snapshots, events, reportPath: options.report };
}
