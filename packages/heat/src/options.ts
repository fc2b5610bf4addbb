/** The command line of `shoal heat` / `npm run heat -- [options]`, parsed without commander. */
import { parseArgs } from 'node:util';

export const WORKLOADS = ['uniform', 'zipfian', 'hot-range', 'hot-item', 'moving-hotspot', 'time-series'] as const;
export type WorkloadKind = (typeof WORKLOADS)[number];

export interface HeatOptions {
  /** host:port of the routers' DynamoDB endpoints; empty with `watch`. */
  endpoints: string[];
  /** host:port of meta peers, for the heat map (AdminService.Status); empty: client figures only. */
  meta: string[];
  /** Only watch the cluster: no workload. */
  watch: boolean;
  table: string;
  workload: WorkloadKind;
  /** Zipfian skew (theta). */
  skew: number;
  /** Distinct keys of the workload. */
  keys: number;
  /** Fraction of requests that are reads (GetItem), 0..1. */
  reads: number;
  consistentReads: boolean;
  itemSize: number;
  /** Requests a second over all workers; undefined: as fast as `concurrency` allows (closed loop). */
  rate: number | undefined;
  concurrency: number;
  durationMs: number;
  intervalMs: number;
  /** The moving hotspot moves to another item collection this often. */
  moveEveryMs: number;
  /** Where the HTML report goes; undefined: none. */
  report: string | undefined;
  seed: number;
  /** Redraw the terminal heat map (TTY), else print one line an interval. */
  live: boolean;
}

export const USAGE = `Usage: shoal heat [options]   (npm run heat -- [options])

Drives a workload against Shoal routers and shows the partitions' heat live: ops/s, capacity units
and throttles of every partition grouped by node, splits and moves as they happen, throughput,
throttle rate and latency. Writes a self-contained HTML report with --report.

  --endpoint <host:port,...>  router endpoints (DynamoDB HTTP API)
  --meta <host:port,...>      meta peers, for the heat map (AdminService.Status)
  --watch                     only watch the cluster (needs --meta), no workload
  --table <name>              table to load, created (on demand) if missing (default heat)
  --workload <kind>           ${WORKLOADS.join(' | ')} (default uniform)
  --skew <theta>              zipfian skew (default 0.99)
  --keys <n>                  distinct keys (default 10000)
  --reads <fraction>          share of reads, 0..1 (default 0.5)
  --consistent                strongly consistent reads
  --item-size <bytes>         size of the written items (default 100)
  --rate <ops/s>              open loop at this rate (paced workers); default: closed loop
  --concurrency <n>           workers (default 16)
  --duration <time>           e.g. 30s, 2m (default 30s; with --watch until Ctrl-C when absent)
  --interval <time>           sampling interval (default 1s)
  --move-every <time>         moving hotspot period (default 10s)
  --report <file.html>        write the HTML report there
  --seed <n>                  workload seed (default 1)
  --no-live                   one line an interval instead of the live heat map
  -h, --help`;

/** "500ms", "30s", "2m" or plain seconds. */
export function parseTime(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (match === null) throw new Error(`not a duration: ${text}`);
  const value = Number(match[1]);
  return match[2] === 'ms' ? value : match[2] === 'm' ? value * 60_000 : value * 1_000;
}

function number(text: string | undefined, name: string, fallback: number, check: (value: number) => boolean): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || !check(value)) throw new Error(`bad --${name}: ${text}`);
  return value;
}

const list = (text: string | undefined): string[] => (text === undefined ? [] : text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== ''));

export function parseHeatArgs(argv: readonly string[], isTty = false): HeatOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowNegative: true,
    options: {
      endpoint: { type: 'string' },
      meta: { type: 'string' },
      watch: { type: 'boolean', default: false },
      table: { type: 'string', default: 'heat' },
      workload: { type: 'string', default: 'uniform' },
      skew: { type: 'string' },
      keys: { type: 'string' },
      reads: { type: 'string' },
      consistent: { type: 'boolean', default: false },
      'item-size': { type: 'string' },
      rate: { type: 'string' },
      concurrency: { type: 'string' },
      duration: { type: 'string' },
      interval: { type: 'string' },
      'move-every': { type: 'string' },
      report: { type: 'string' },
      seed: { type: 'string' },
      live: { type: 'boolean', default: isTty },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const workload = values.workload as WorkloadKind;
  if (!WORKLOADS.includes(workload)) throw new Error(`unknown --workload ${values.workload}: one of ${WORKLOADS.join(', ')}`);
  const endpoints = list(values.endpoint);
  const meta = list(values.meta);
  if (values.watch && meta.length === 0) throw new Error('--watch needs --meta (the meta peers to read the heat map from)');
  if (!values.watch && endpoints.length === 0) throw new Error('--endpoint is required (or --watch with --meta)');
  return {
    endpoints,
    meta,
    watch: values.watch,
    table: values.table,
    workload,
    skew: number(values.skew, 'skew', 0.99, (v) => v > 0),
    keys: number(values.keys, 'keys', 10_000, (v) => Number.isInteger(v) && v >= 1),
    reads: number(values.reads, 'reads', 0.5, (v) => v >= 0 && v <= 1),
    consistentReads: values.consistent,
    itemSize: number(values['item-size'], 'item-size', 100, (v) => Number.isInteger(v) && v >= 1 && v <= 400_000),
    rate: values.rate === undefined ? undefined : number(values.rate, 'rate', 0, (v) => v > 0),
    concurrency: number(values.concurrency, 'concurrency', 16, (v) => Number.isInteger(v) && v >= 1 && v <= 1_024),
    durationMs: values.duration === undefined ? (values.watch ? Number.POSITIVE_INFINITY : 30_000) : parseTime(values.duration),
    intervalMs: values.interval === undefined ? 1_000 : parseTime(values.interval),
    moveEveryMs: values['move-every'] === undefined ? 10_000 : parseTime(values['move-every']),
    report: values.report,
    seed: number(values.seed, 'seed', 1, Number.isInteger),
    live: values.live,
  };
}
