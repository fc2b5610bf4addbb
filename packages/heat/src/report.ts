/**
 * The run's HTML report, self-contained (inline SVG and CSS, no scripts or fetches): a heat map of
 * every partition over time with the splits and moves marked, throughput and throttles, latency,
 * and the figures of the whole run.
 */
import type { IntervalFigures, RunSummary } from './figures.ts';
import { seconds } from './terminal.ts';
import { utilization, type HeatEvent, type HeatSnapshot } from './watch.ts';

export interface ReportInput {
  title: string;
  startedAt: Date;
  summary: RunSummary;
  figures: readonly IntervalFigures[];
  snapshots: readonly HeatSnapshot[];
  events: readonly HeatEvent[];
}

const WIDTH = 960;
const LEFT = 150;
const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Blue (cold) to red (at or over the limit); near white when idle. */
export function heatColour(share: number): string {
  if (share <= 0) return '#f1f3f6';
  const clamped = Math.min(1, share);
  return `hsl(${Math.round(220 - 220 * clamped)}, 80%, ${Math.round(62 - 12 * clamped)}%)`;
}

function heatMap(snapshots: readonly HeatSnapshot[], events: readonly HeatEvent[], durationMs: number): string {
  if (snapshots.length === 0) return '<p>No heat map: the run had no --meta to read the partitions from.</p>';
  const ids = [...new Set(snapshots.flatMap((s) => s.partitions.map((p) => p.id)))].sort((a, b) => a - b);
  const last = new Map(snapshots.at(-1)!.partitions.map((p) => [p.id, p]));
  const row = 18;
  const height = ids.length * row + 30;
  const span = Math.max(durationMs, snapshots.at(-1)!.at, 1);
  const x = (at: number): number => LEFT + ((WIDTH - LEFT - 10) * at) / span;
  const parts: string[] = [];
  snapshots.forEach((snapshot, i) => {
    const from = i === 0 ? 0 : snapshots[i - 1].at;
    const width = Math.max(1, x(snapshot.at) - x(from));
    const present = new Map(snapshot.partitions.map((p) => [p.id, p]));
    ids.forEach((id, r) => {
      const partition = present.get(id);
      if (partition === undefined) return;
      const share = utilization(partition);
      const tip = `p${id} at ${seconds(snapshot.at)}: ${Math.round(share * 100)}% of its limits, w ${partition.writesPerSecond.toFixed(0)}/s r ${partition.readsPerSecond.toFixed(0)}/s, throttled ${partition.throttledPerSecond.toFixed(1)}/s, leader node ${partition.leader ?? '?'}`;
      parts.push(`<rect x="${x(from).toFixed(1)}" y="${r * row}" width="${width.toFixed(1)}" height="${row - 2}" fill="${heatColour(share)}"><title>${escape(tip)}</title></rect>`);
      if (partition.throttledPerSecond > 0) parts.push(`<circle cx="${(x(from) + width / 2).toFixed(1)}" cy="${r * row + row / 2 - 1}" r="2.5" fill="#000"><title>${escape(tip)}</title></circle>`);
    });
  });
  ids.forEach((id, r) => {
    const partition = last.get(id);
    const label = partition === undefined ? `p${id} (gone)` : `p${id} ${partition.table} node ${partition.leader ?? '?'}`;
    parts.push(`<text x="4" y="${r * row + 12}" class="label">${escape(label)}</text>`);
  });
  for (const event of events) {
    const ex = x(event.at).toFixed(1);
    const stroke = event.kind === 'split' ? '#d00' : '#555';
    parts.push(`<line x1="${ex}" y1="0" x2="${ex}" y2="${ids.length * row}" stroke="${stroke}" stroke-dasharray="4 3"><title>${escape(`${seconds(event.at)} ${event.text}`)}</title></line>`);
  }
  parts.push(`<text x="${LEFT}" y="${height - 8}" class="label">0:00</text><text x="${WIDTH - 50}" y="${height - 8}" class="label">${seconds(span)}</text>`);
  return `<svg viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="partition heat map">${parts.join('')}</svg>`;
}

interface Series {
  name: string;
  colour: string;
  points: [number, number][];
}

function lineChart(series: readonly Series[], unit: string, durationMs: number): string {
  const height = 220;
  const top = 10;
  const bottom = 190;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '<p>No figures: no workload ran.</p>';
  const maxX = Math.max(durationMs, ...all.map(([at]) => at), 1);
  const maxY = Math.max(...all.map(([, value]) => value), 1) * 1.1;
  const x = (at: number): number => LEFT + ((WIDTH - LEFT - 10) * at) / maxX;
  const y = (value: number): number => bottom - ((bottom - top) * value) / maxY;
  const parts: string[] = [`<line x1="${LEFT}" y1="${bottom}" x2="${WIDTH - 10}" y2="${bottom}" stroke="#999"/>`, `<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${bottom}" stroke="#999"/>`];
  for (let i = 0; i <= 4; i++) {
    const value = (maxY * i) / 4;
    parts.push(`<text x="${LEFT - 6}" y="${y(value) + 4}" text-anchor="end" class="label">${value >= 100 ? value.toFixed(0) : value.toFixed(1)}</text>`);
  }
  parts.push(`<text x="4" y="${top + 10}" class="label">${escape(unit)}</text>`, `<text x="${WIDTH - 50}" y="${height - 8}" class="label">${seconds(maxX)}</text>`);
  series.forEach((s, i) => {
    const path = s.points.map(([at, value]) => `${x(at).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${path}"/>`);
    parts.push(`<rect x="${LEFT + 10 + i * 160}" y="${height - 18}" width="12" height="4" fill="${s.colour}"/><text x="${LEFT + 26 + i * 160}" y="${height - 12}" class="label">${escape(s.name)}</text>`);
  });
  return `<svg viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="${escape(unit)}">${parts.join('')}</svg>`;
}

export function renderReport(input: ReportInput): string {
  const { summary, figures, snapshots, events } = input;
  const at = (pick: (f: IntervalFigures) => number): [number, number][] => figures.map((f) => [f.at, pick(f)]);
  const rows: [string, string][] = [
    ['duration', seconds(summary.durationMs)],
    ['requests served', String(summary.ok)],
    ['throughput', `${summary.okPerSecond.toFixed(1)} ops/s`],
    ['throttled', `${summary.throttled} (${(summary.throttleRate * 100).toFixed(2)}% of attempts)`],
    ['other errors', String(summary.errors)],
    ['latency p50 / p99', `${summary.p50Ms.toFixed(1)} ms / ${summary.p99Ms.toFixed(1)} ms`],
    ['splits / moves seen', `${summary.splits} / ${summary.moves}`],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoal heat: ${escape(input.title)}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; } td { padding: 2px 12px 2px 0; }
.label { font: 11px ui-monospace, monospace; fill: #333; }
ul { font: 12px ui-monospace, monospace; }
</style></head><body>
<h1>shoal heat: ${escape(input.title)}</h1>
<p>Started ${escape(input.startedAt.toISOString())}.</p>
<table>${rows.map(([name, value]) => `<tr><td>${escape(name)}</td><td>${escape(value)}</td></tr>`).join('')}</table>
<h2>Partitions over time</h2>
<p>Colour: capacity units over the partition's limits (the larger of reads and writes), blue cold to red at the limit; black dots: throttling; dashed lines: splits (red) and moves.</p>
${heatMap(snapshots, events, summary.durationMs)}
<h2>Throughput</h2>
${lineChart(
  [
    { name: 'served ops/s', colour: '#1f77b4', points: at((f) => f.okPerSecond) },
    { name: 'throttled/s', colour: '#d62728', points: at((f) => f.throttledPerSecond) },
  ],
  'requests/s',
  summary.durationMs,
)}
<h2>Latency</h2>
${lineChart(
  [
    { name: 'p50', colour: '#2ca02c', points: at((f) => f.p50Ms) },
    { name: 'p99', colour: '#ff7f0e', points: at((f) => f.p99Ms) },
  ],
  'ms',
  summary.durationMs,
)}
<h2>Splits and moves</h2>
${events.length === 0 ? '<p>None seen.</p>' : `<ul>${events.map((e) => `<li>${seconds(e.at)} ${escape(e.text)}</li>`).join('')}</ul>`}
</body></html>
`;
}
