/**
 * The live terminal view: the run's figures, then every partition grouped by the node leading it,
 * a bar coloured by how hot it runs (units over its limits), ops/s, units and throttles, then the
 * latest splits and moves.
 */
import type { IntervalFigures } from './figures.ts';
import { utilization, type HeatEvent, type HeatSnapshot, type PartitionHeat } from './watch.ts';

const BAR_WIDTH = 20;
/** xterm-256 colours from cold to hot. */
const GRADIENT = [27, 33, 39, 45, 50, 82, 118, 190, 226, 220, 214, 208, 202, 196];

const colour = (share: number, text: string, ansi: boolean): string => {
  if (!ansi) return text;
  const index = Math.min(GRADIENT.length - 1, Math.floor(Math.max(0, share) * (GRADIENT.length - 1)));
  return `\x1b[38;5;${GRADIENT[index]}m${text}\x1b[0m`;
};

const fixed = (value: number, digits = 0): string => value.toFixed(digits);

export function seconds(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * A range's bounds in hex, cut where they are told apart: 12 digits (space id and the start of the
 * hash) usually, more for the halves of a sort-key split, which share their partition key's bytes.
 */
export function rangeLabel(start: string, end: string): string {
  let common = 0;
  while (common < start.length && common < end.length && start[common] === end[common]) common++;
  const width = Math.max(12, common + 4);
  const cut = (key: string): string => (key.length > width ? `${key.slice(0, width)}…` : key);
  return `[${cut(start) || '-'}..${cut(end) || '+'})`;
}

function partitionLine(partition: PartitionHeat, ansi: boolean): string {
  const share = utilization(partition);
  const filled = Math.min(BAR_WIDTH, Math.round(share * BAR_WIDTH));
  const bar = colour(share, '█'.repeat(filled), ansi) + '░'.repeat(BAR_WIDTH - filled);
  const units = `wu ${fixed(partition.writeUnitsPerSecond)}/${fixed(partition.writeUnitLimit)} ru ${fixed(partition.readUnitsPerSecond)}/${fixed(partition.readUnitLimit)}`;
  const ops = `w ${fixed(partition.writesPerSecond)}/s r ${fixed(partition.readsPerSecond)}/s`;
  const throttled = partition.throttledPerSecond > 0 ? colour(1, ` throttled ${fixed(partition.throttledPerSecond, 1)}/s`, ansi) : '';
  const hot = partition.hotKey === undefined ? '' : colour(1, ` hot item ${partition.hotKey.key.slice(8, 24)}… ${Math.round(partition.hotKey.share * 100)}% (no split relieves it)`, ansi);
  const range = rangeLabel(partition.start, partition.end);
  const size = `${(partition.sizeBytes / 1024).toFixed(0)} KiB`;
  return `  p${String(partition.id).padEnd(4)} ${bar} ${String(Math.round(share * 100)).padStart(4)}%  ${ops.padEnd(20)} ${units.padEnd(30)} ${size.padStart(10)}  ${partition.table} e${partition.epoch} ${range}${throttled}${hot}`;
}

export interface Frame {
  title: string;
  elapsedMs: number;
  durationMs: number;
  figures: IntervalFigures | undefined;
  snapshot: HeatSnapshot | undefined;
  events: readonly HeatEvent[];
}

export function renderFrame(frame: Frame, ansi: boolean): string {
  const lines: string[] = [];
  const total = Number.isFinite(frame.durationMs) ? ` / ${seconds(frame.durationMs)}` : '';
  lines.push(`shoal heat: ${frame.title}   ${seconds(frame.elapsedMs)}${total}`);
  const f = frame.figures;
  if (f !== undefined) {
    lines.push(
      `throughput ${fixed(f.okPerSecond)} ops/s   throttled ${fixed(f.throttledPerSecond)}/s (${fixed(f.throttleRate * 100, 1)}%)   errors ${fixed(f.errorsPerSecond)}/s   p50 ${fixed(f.p50Ms, 1)} ms   p99 ${fixed(f.p99Ms, 1)} ms`,
    );
  }
  if (frame.snapshot !== undefined) {
    const byNode = new Map<string, PartitionHeat[]>();
    for (const partition of frame.snapshot.partitions) {
      const node = partition.leader === undefined ? 'no leader reported' : `node ${partition.leader}`;
      byNode.set(node, [...(byNode.get(node) ?? []), partition]);
    }
    for (const node of [...byNode.keys()].sort()) {
      lines.push('', node);
      for (const partition of byNode.get(node)!) lines.push(partitionLine(partition, ansi));
    }
  } else {
    lines.push('', '(no heat map: give --meta to read the partitions from the meta group)');
  }
  if (frame.events.length > 0) {
    lines.push('', 'splits and moves:');
    for (const event of frame.events.slice(-8)) lines.push(`  ${seconds(event.at)}  ${event.text}`);
  }
  return lines.join('\n');
}

/** One line an interval, for logs and terminals that are not TTYs. */
export function renderLine(elapsedMs: number, figures: IntervalFigures | undefined, snapshot: HeatSnapshot | undefined): string {
  const parts = [seconds(elapsedMs)];
  if (figures !== undefined) {
    parts.push(`${fixed(figures.okPerSecond)} ops/s`, `throttled ${fixed(figures.throttleRate * 100, 1)}%`, `p50 ${fixed(figures.p50Ms, 1)} ms`, `p99 ${fixed(figures.p99Ms, 1)} ms`);
  }
  if (snapshot !== undefined) {
    const hottest = [...snapshot.partitions].sort((a, b) => utilization(b) - utilization(a))[0];
    parts.push(`${snapshot.partitions.length} partitions`);
    if (hottest !== undefined) parts.push(`hottest p${hottest.id} ${Math.round(utilization(hottest) * 100)}% on node ${hottest.leader ?? '?'}`);
  }
  return parts.join('  ');
}
