/**
 * The heat tool: its options, the workloads' key choice (seeded), the latency histogram, the heat
 * map rows and split/move detection from Status answers, the terminal frame and the HTML report;
 * then a short run against a real 3-node cluster (node and router processes) writing its report.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { ChaosCluster } from '@shoal/chaos';
import { StatusResponseSchema } from '@shoal/proto';
import {
  LatencyHistogram,
  Workload,
  Zipfian,
  changes,
  parseHeatArgs,
  parseTime,
  partitionsFromStatus,
  rangeLabel,
  renderFrame,
  renderReport,
  runHeat,
  type HeatOptions,
  type HeatSnapshot,
  type PartitionHeat,
} from '@shoal/heat';
import { seededRandom } from '@shoal/node';

const partition = (id: number, fields: Partial<PartitionHeat> = {}): PartitionHeat => ({
  id,
  table: 'heat',
  epoch: 1,
  start: '',
  end: '',
  replicas: [1, 2, 3],
  leader: 1,
  readsPerSecond: 0,
  writesPerSecond: 0,
  readUnitsPerSecond: 0,
  writeUnitsPerSecond: 0,
  throttledPerSecond: 0,
  readUnitLimit: 3_000,
  writeUnitLimit: 1_000,
  sizeBytes: 0,
  ...fields,
});

describe('options', () => {
  it('parses a workload run and refuses what makes no sense', () => {
    const options = parseHeatArgs(['--endpoint', '127.0.0.1:8000', '--workload', 'zipfian', '--skew', '1.2', '--rate', '500', '--duration', '2m', '--reads', '0.25']) as HeatOptions;
    expect(options).toMatchObject({ endpoints: ['127.0.0.1:8000'], workload: 'zipfian', skew: 1.2, rate: 500, durationMs: 120_000, reads: 0.25, live: false, table: 'heat' });
    expect(parseHeatArgs(['--help'])).toBe('help');
    expect(() => parseHeatArgs(['--workload', 'zipfian'])).toThrow(/--endpoint is required/);
    expect(() => parseHeatArgs(['--watch'])).toThrow(/--watch needs --meta/);
    expect(() => parseHeatArgs(['--endpoint', 'a:1', '--workload', 'spiky'])).toThrow(/unknown --workload/);
    expect(() => parseHeatArgs(['--endpoint', 'a:1', '--reads', '2'])).toThrow(/bad --reads/);
    expect((parseHeatArgs(['--watch', '--meta', 'a:1,b:2']) as HeatOptions).durationMs).toBe(Number.POSITIVE_INFINITY);
    expect(parseTime('500ms')).toBe(500);
    expect(parseTime('3')).toBe(3_000);
  });
});

describe('workloads', () => {
  const options = { keys: 1_000, reads: 0.5, skew: 0.99, moveEveryMs: 10_000 };
  const draw = (kind: HeatOptions['workload'], count: number, elapsed = 0): string[] => {
    const workload = new Workload(kind, options, 7);
    return Array.from({ length: count }, () => {
      const { key } = workload.next(elapsed, 1_000_000);
      return `${key.pk}/${key.sk}`;
    });
  };
  const share = (keys: string[], pick: (key: string) => boolean): number => keys.filter(pick).length / keys.length;

  it('repeats for a seed', () => {
    expect(draw('zipfian', 50)).toEqual(draw('zipfian', 50));
  });

  it('skews as asked', () => {
    const zipf = new Zipfian(1_000, 0.99, seededRandom(3));
    const ranks = Array.from({ length: 20_000 }, () => zipf.next());
    const top = ranks.filter((rank) => rank === 0).length / ranks.length;
    // Rank 0 of 1,000 at theta 0.99 draws about 1/zeta(1000) = 13% of the requests.
    expect(top).toBeGreaterThan(0.1);
    expect(top).toBeLessThan(0.17);
    expect(Math.max(...ranks)).toBeLessThan(1_000);
    expect(share(draw('uniform', 5_000), (key) => key === 'k0/0')).toBeLessThan(0.01);
    expect(share(draw('hot-item', 5_000), (key) => key === 'hot/0')).toBeGreaterThan(0.85);
    const range = draw('hot-range', 5_000);
    expect(share(range, (key) => key.startsWith('range/'))).toBeGreaterThan(0.85);
    expect(new Set(range.filter((key) => key.startsWith('range/'))).size).toBeGreaterThan(500);
    expect(share(draw('moving-hotspot', 2_000, 0), (key) => key.startsWith('spot0/'))).toBeGreaterThan(0.85);
    expect(share(draw('moving-hotspot', 2_000, 25_000), (key) => key.startsWith('spot2/'))).toBeGreaterThan(0.85);
  });

  it('appends time series writes in order within the current bucket', () => {
    const workload = new Workload('time-series', { ...options, reads: 0 }, 1);
    const keys = Array.from({ length: 5 }, () => workload.next(0, 120_000).key);
    expect(keys).toEqual([0, 1, 2, 3, 4].map((sk) => ({ pk: 'ts2', sk })));
  });
});

describe('latency histogram', () => {
  it('gives percentiles within its bucket width', () => {
    const histogram = new LatencyHistogram();
    for (let i = 1; i <= 1_000; i++) histogram.add(i / 10);
    expect(histogram.percentile(0.5)).toBeGreaterThan(50);
    expect(histogram.percentile(0.5)).toBeLessThan(50 * 1.1);
    expect(histogram.percentile(0.99)).toBeGreaterThan(99);
    expect(histogram.percentile(0.99)).toBeLessThan(99 * 1.1);
    expect(new LatencyHistogram().percentile(0.5)).toBe(0);
  });
});

describe('heat map from Status', () => {
  it('sums the replicas\' reports per partition and names the leader', () => {
    const status = create(StatusResponseSchema, {
      partitions: [
        { id: 1n, tableId: 5, startKey: new Uint8Array([0]), endKey: new Uint8Array([0x80]), epoch: 2n, replicas: [{ nodeId: 1n }, { nodeId: 2n }] },
        { id: 2n, tableId: 5, startKey: new Uint8Array([0x80]), epoch: 2n, replicas: [{ nodeId: 2n }] },
      ],
      nodes: [
        { node: { id: 1n }, reportedReplicas: [{ partitionId: 1n, leader: true, sizeBytes: 4_096n, writesPerSecond: 10, writeUnitsPerSecond: 20, readsPerSecond: 4, throttledWritesPerSecond: 1, writeUnitLimit: 1_000, readUnitLimit: 3_000 }] },
        { node: { id: 2n }, reportedReplicas: [{ partitionId: 1n, readsPerSecond: 6, readUnitsPerSecond: 3 }, { partitionId: 2n, leader: true }] },
      ],
    });
    const rows = partitionsFromStatus(status, new Map([[5, 'orders']]));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ id: 1, table: 'orders', epoch: 2, start: '00', end: '80', leader: 1, sizeBytes: 4_096, readsPerSecond: 10, writesPerSecond: 10, writeUnitsPerSecond: 20, readUnitsPerSecond: 3, throttledPerSecond: 1, writeUnitLimit: 1_000 });
    expect(rows[1]).toMatchObject({ id: 2, leader: 2, start: '80', end: '' });
    expect(rows[0].hotKey).toBeUndefined();
  });

  it('shows a range cut where its bounds differ, so that sort-key split halves stay apart', () => {
    expect(rangeLabel('00000005', '00000005aabbccdd')).toBe('[00000005..00000005aabb…)');
    expect(rangeLabel('00000005aabbccdd11', '')).toBe('[00000005aabb…..+)');
    const collection = '00000005aabbccddeeff0011726e6700';
    expect(rangeLabel(`${collection}0203`, `${collection}0410`)).toBe(`[${collection}0203..${collection}0410)`);
    expect(rangeLabel(`${collection}02030405`, `${collection}0410`)).toBe(`[${collection}02030…..${collection}0410)`);
  });

  it('marks a partition the meta leader reports hot on one key, in the frame too', () => {
    const key = Uint8Array.from(Buffer.from('00000005aabbccddeeff0011686f7400', 'hex'));
    const status = create(StatusResponseSchema, {
      partitions: [{ id: 1n, tableId: 5, startKey: new Uint8Array([0]), epoch: 1n, replicas: [{ nodeId: 1n }] }],
      nodes: [{ node: { id: 1n }, reportedReplicas: [{ partitionId: 1n, leader: true, writeUnitsPerSecond: 1_000, writeUnitLimit: 1_000 }] }],
      hotKeys: [{ partitionId: 1n, key, share: 0.9, utilization: 1, seconds: 4 }],
    });
    const [row] = partitionsFromStatus(status, new Map([[5, 'orders']]));
    expect(row.hotKey).toEqual({ key: '00000005aabbccddeeff0011686f7400', share: 0.9 });
    const frame = renderFrame({ title: 'hot-item', elapsedMs: 1_000, durationMs: 2_000, figures: undefined, snapshot: { at: 1_000, partitions: [row] }, events: [] }, false);
    expect(frame).toContain('hot item aabbccddeeff0011… 90% (no split relieves it)');
  });

  it('tells splits, leader moves and replica moves apart', () => {
    const before: HeatSnapshot = { at: 1_000, partitions: [partition(1, { start: '00', end: '' }), partition(2, { table: 'other' })] };
    const after: HeatSnapshot = {
      at: 2_000,
      partitions: [partition(1, { start: '00', end: '40', epoch: 2, leader: 2 }), partition(2, { table: 'other', replicas: [1, 2, 4] }), partition(3, { start: '40', end: '', epoch: 2 })],
    };
    const events = changes(before, after);
    expect(events.map((event) => event.kind).sort()).toEqual(['leader', 'replicas', 'split']);
    expect(events.find((event) => event.kind === 'split')).toMatchObject({ partition: 1, text: 'split: partition 1 of heat -> 1 + 3' });
    expect(changes(after, { at: 3_000, partitions: [after.partitions[0], after.partitions[2]] })).toEqual([{ at: 3_000, kind: 'gone', partition: 2, text: 'partition 2 of other is gone' }]);
  });

  it('draws the frame by node and the report with its heat map and charts', () => {
    const snapshot: HeatSnapshot = { at: 3_000, partitions: [partition(1, { writeUnitsPerSecond: 900, throttledPerSecond: 5, sizeBytes: 65_536 }), partition(2, { leader: 2, readUnitsPerSecond: 300 })] };
    const figures = { at: 3_000, okPerSecond: 900, throttledPerSecond: 5, errorsPerSecond: 0, throttleRate: 0.005, p50Ms: 1.2, p99Ms: 9.5 };
    const frame = renderFrame({ title: 'zipfian', elapsedMs: 3_000, durationMs: 10_000, figures, snapshot, events: [] }, false);
    expect(frame).toContain('node 1\n  p1    ██████████████████░░   90%');
    expect(frame).toContain('throttled 5.0/s');
    expect(frame).toContain('  64 KiB  heat e1');
    expect(frame).toContain('node 2\n  p2    ██░░');
    const html = renderReport({
      title: 'zipfian <run>',
      startedAt: new Date(0),
      summary: { durationMs: 3_000, ok: 2_700, throttled: 15, errors: 0, okPerSecond: 900, throttleRate: 0.0055, p50Ms: 1.2, p99Ms: 9.5, splits: 1, moves: 0 },
      figures: [figures],
      snapshots: [snapshot],
      events: [{ at: 2_000, kind: 'split', partition: 1, text: 'split: partition 1 of heat -> 1 + 2' }],
    });
    expect(html).toContain('zipfian &#60;run&#62;');
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toContain('split: partition 1 of heat -&#62; 1 + 2');
    expect(html).not.toMatch(/<script|src=|href=/);
  });
});

describe('a heat run against a 3-node cluster', () => {
  let dir = '';
  let cluster: ChaosCluster | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-heat-'));
    cluster = await ChaosCluster.start({ nodes: 3, routers: 1, partitions: 2, dir });
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('drives a zipfian workload, sees the partitions\' load by node and writes the HTML report', async () => {
    const report = join(dir, 'heat.html');
    const lines: string[] = [];
    const options = parseHeatArgs([
      '--endpoint', cluster!.routerEndpoints.join(','),
      '--meta', cluster!.metaAddresses.join(','),
      '--workload', 'zipfian',
      '--concurrency', '4',
      '--duration', '5s',
      '--interval', '1s',
      '--keys', '200',
      '--report', report,
    ]) as HeatOptions;
    const result = await runHeat(options, { print: (line) => lines.push(line) });
    expect(result.summary.ok).toBeGreaterThan(0);
    expect(result.summary.errors).toBe(0);
    expect(result.figures.length).toBeGreaterThan(0);
    expect(lines.some((line) => / ops\/s .* partitions /.test(line))).toBe(true);
    const heat = result.snapshots.at(-1)!.partitions.filter((p) => p.table === 'heat');
    expect(heat).toHaveLength(2);
    for (const p of heat) expect(p.leader).toBeDefined();
    // The leaders' heartbeats carried the load of the run.
    expect(result.snapshots.some((snapshot) => snapshot.partitions.some((p) => p.table === 'heat' && p.writesPerSecond > 0 && p.writeUnitLimit === 1_000))).toBe(true);
    const html = await readFile(report, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('zipfian(0.99) on heat');

    // Watching only: the heat map without a workload.
    const watched = await runHeat(parseHeatArgs(['--watch', '--meta', cluster!.metaAddresses.join(','), '--duration', '2s', '--interval', '500ms']) as HeatOptions, { print: () => {} });
    expect(watched.figures).toEqual([]);
    expect(watched.summary.ok).toBe(0);
    expect(watched.snapshots.length).toBeGreaterThan(0);
    expect(watched.snapshots.at(-1)!.partitions.filter((p) => p.table === 'heat')).toHaveLength(2);
  }, 120_000);
});
