/** The run's report: its JSON shape, a terminal summary and a self-contained HTML page (inline SVG, no external assets). */
import type { FaultRecord } from './faults.ts';
import type { Figures, Spread } from './figures.ts';
import type { LeaderlessWindow } from './observer.ts';
import type { Check } from './verdict.ts';
import type { WorkloadOptions } from './workload.ts';

export interface ChaosReport {
  seed: number;
  startedAt: string;
  /** Where the logs (and, after a failed run, the data) are. */
  dir: string;
  cluster: {
    nodes: number;
    routers: number;
    partitions: number;
    partitionIds: number[];
    /** Whether placement had stopped moving replicas before the workload started (see waitSettled). */
    settled: boolean;
  };
  workload: WorkloadOptions & { durationMs: number; faultKinds: string[] };
  /** How long the workload ran (ms). */
  workloadMs: number;
  plannedFaults: number;
  faults: FaultRecord[];
  leaderless: LeaderlessWindow[];
  figures: Figures;
  checks: Check[];
  /** Every safety check passed. */
  safe: boolean;
  /** Every check passed. */
  ok: boolean;
}

function verdictText(report: ChaosReport): string {
  if (report.ok) return 'clean';
  return report.safe ? 'safe, but a liveness bound was exceeded' : 'SAFETY VIOLATIONS FOUND';
}

function ms(value: number | undefined): string {
  return value === undefined ? '-' : value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

function spreadText(spread: Spread): string {
  return spread.count === 0 ? 'n/a' : `p50 ${ms(spread.p50Ms)}, max ${ms(spread.maxMs)} (${spread.count})`;
}

function faultLine(fault: FaultRecord): string {
  const at = (value: number | undefined): string => (value === undefined ? '-' : `${(value / 1000).toFixed(1)}s`);
  const detail = fault.detail === undefined ? '' : ` (${fault.detail})`;
  const leader = fault.newLeaderAt === undefined ? '' : `, new leader after ${ms(fault.newLeaderAt - fault.start)}`;
  const outcome = fault.outcome === undefined ? '' : `, ${fault.outcome}`;
  const note = fault.note === undefined ? '' : `  [${fault.note}]`;
  return `  ${at(fault.start).padStart(6)}  ${fault.kind.padEnd(11)} ${fault.target}${detail}: healed ${at(fault.healed)}, ready ${at(fault.ready)}${leader}${outcome}${note}`;
}

export function formatSummary(report: ChaosReport): string {
  const { figures } = report;
  const lines: string[] = [];
  lines.push('');
  lines.push(`shoal chaos — seed ${report.seed}, ${(report.workloadMs / 1000).toFixed(0)} s, ${report.cluster.nodes} nodes, ${report.cluster.routers} routers`);
  if (!report.cluster.settled) lines.push('note: replicas were still moving when the workload started');
  lines.push(`operations: ${figures.total.ok} ok, ${figures.total.failed} failed, ${figures.total.indeterminate} indeterminate`);
  const kinds = Object.entries(figures.byKind).map(([kind, tally]) => `${kind} ${tally.ok}/${tally.failed}/${tally.indeterminate}`);
  lines.push(`  by kind (ok/failed/indeterminate): ${kinds.join(', ')}`);
  const errors = Object.entries(figures.errors).sort((a, b) => b[1] - a[1]).slice(0, 6);
  if (errors.length > 0) lines.push(`  errors: ${errors.map(([type, count]) => `${type} ×${count}`).join(', ')}`);
  lines.push(`throughput (ok/s): ${figures.phases.map((phase) => `${phase.name} ${phase.okPerSecond}`).join(', ')}; latency of acknowledged requests p50 ${ms(figures.latency.p50Ms)}, p99 ${ms(figures.latency.p99Ms)}`);
  lines.push(`faults: ${report.faults.length} of ${report.plannedFaults} planned`);
  for (const fault of report.faults) lines.push(faultLine(fault));
  lines.push(`unavailability per fault: ${spreadText(figures.unavailability)}`);
  lines.push(`time to a new leader: ${spreadText(figures.timeToNewLeader)}; recovery to ready: ${spreadText(figures.recovery)}`);
  lines.push(`longest leaderless window: ${ms(figures.longestLeaderlessMs)}`);
  lines.push('verdict:');
  for (const check of report.checks) {
    lines.push(`  ${check.ok ? 'ok  ' : 'FAIL'}  ${check.kind.padEnd(8)} ${check.name}: ${check.summary}`);
    if (check.details !== undefined) lines.push(check.details.split('\n').map((line) => `        ${line}`).join('\n'));
  }
  lines.push(`VERDICT: ${verdictText(report)}`);
  return lines.join('\n');
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FAULT_COLORS: Record<string, string> = {
  kill: '#e4572e',
  'kill-leader': '#a23b72',
  pause: '#f3a712',
  'kill-router': '#2e86ab',
  partition: '#3b8b5a',
  'kill-during-split': '#7d4e9f',
  'kill-during-transfer': '#c2185b',
  'disk-slow': '#8d6e63',
  'disk-full': '#5d4037',
};

/** Faults as shaded bands behind throughput (ok/s) and errors (failed and indeterminate per second). */
function timelineSvg(report: ChaosReport): string {
  const width = 960;
  const height = 300;
  const left = 50;
  const right = 20;
  const top = 20;
  const bottom = 40;
  const bins = report.figures.timeline;
  const seconds = Math.max(1, bins.length);
  const peak = Math.max(1, ...bins.map((bin) => bin.ok + bin.failed + bin.indeterminate));
  const x = (ms: number): number => left + ((width - left - right) * ms) / (seconds * 1000);
  const y = (value: number): number => height - bottom - ((height - top - bottom) * value) / peak;
  const path = (value: (bin: (typeof bins)[number]) => number): string =>
    bins.map((bin, index) => `${index === 0 ? 'M' : 'L'}${x(bin.at + 500).toFixed(1)},${y(value(bin)).toFixed(1)}`).join(' ');
  const parts: string[] = [];
  for (const fault of report.faults) {
    const end = fault.ready ?? fault.healed ?? fault.start + 1000;
    const color = FAULT_COLORS[fault.kind] ?? '#888';
    parts.push(
      `<rect x="${x(fault.start).toFixed(1)}" y="${top}" width="${Math.max(1, x(end) - x(fault.start)).toFixed(1)}" height="${height - top - bottom}" fill="${color}" opacity="0.18"><title>${escapeHtml(`${fault.kind} ${fault.target} ${(fault.start / 1000).toFixed(1)}–${(end / 1000).toFixed(1)} s`)}</title></rect>`,
      `<text x="${(x(fault.start) + 2).toFixed(1)}" y="${top + 12}" font-size="10" fill="${color}">${escapeHtml(`${fault.kind} ${fault.target.replace('node ', 'n').replace('router ', 'r')}`)}</text>`,
    );
  }
  for (const window of report.leaderless) {
    parts.push(
      `<rect x="${x(window.start).toFixed(1)}" y="${height - bottom + 2}" width="${Math.max(1, x(window.end) - x(window.start)).toFixed(1)}" height="6" fill="#555"><title>${escapeHtml(`${window.partition === 0 ? 'meta group' : `partition ${window.partition}`} leaderless ${(window.start / 1000).toFixed(1)}–${(window.end / 1000).toFixed(1)} s`)}</title></rect>`,
    );
  }
  parts.push(`<path d="${path((bin) => bin.ok)}" fill="none" stroke="#1b998b" stroke-width="2"/>`);
  parts.push(`<path d="${path((bin) => bin.failed)}" fill="none" stroke="#e4572e" stroke-width="1.5"/>`);
  parts.push(`<path d="${path((bin) => bin.indeterminate)}" fill="none" stroke="#7d5ba6" stroke-width="1.5" stroke-dasharray="4 2"/>`);
  const axis: string[] = [
    `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#333"/>`,
    `<text x="${left - 6}" y="${top + 4}" font-size="10" text-anchor="end">${peak}</text>`,
    `<text x="${left - 6}" y="${height - bottom}" font-size="10" text-anchor="end">0</text>`,
  ];
  const step = Math.max(1, Math.ceil(seconds / 12 / 5) * 5);
  for (let second = 0; second <= seconds; second += step) {
    axis.push(`<text x="${x(second * 1000).toFixed(1)}" y="${height - bottom + 22}" font-size="10" text-anchor="middle">${second}s</text>`);
  }
  const legend = [
    ['#1b998b', 'ok per second'],
    ['#e4572e', 'failed per second'],
    ['#7d5ba6', 'indeterminate per second'],
    ['#555', 'leaderless partition (bar under the axis)'],
  ]
    .map(([color, label], index) => `<rect x="${left + index * 200}" y="${height - 12}" width="10" height="10" fill="${color}"/><text x="${left + index * 200 + 14}" y="${height - 3}" font-size="11">${label}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">${axis.join('')}${parts.join('')}${legend}</svg>`;
}

export function renderHtml(report: ChaosReport): string {
  const { figures } = report;
  const row = (cells: (string | number)[], header = false): string =>
    `<tr>${cells.map((cell) => (header ? `<th>${escapeHtml(String(cell))}</th>` : `<td>${escapeHtml(String(cell))}</td>`)).join('')}</tr>`;
  const checks = report.checks
    .map(
      (check) =>
        `<tr class="${check.ok ? 'ok' : 'fail'}"><td>${check.ok ? 'ok' : 'FAIL'}</td><td>${check.kind}</td><td>${escapeHtml(check.name)}</td><td>${escapeHtml(check.summary)}${
          check.details === undefined ? '' : `<pre>${escapeHtml(check.details)}</pre>`
        }</td></tr>`,
    )
    .join('');
  const faults = report.faults
    .map((fault) =>
      row([
        `${(fault.start / 1000).toFixed(1)} s`,
        fault.kind,
        fault.target,
        fault.partition ?? '',
        fault.detail ?? '',
        fault.healed === undefined ? '-' : `${(fault.healed / 1000).toFixed(1)} s`,
        fault.ready === undefined ? '-' : `${(fault.ready / 1000).toFixed(1)} s`,
        fault.newLeaderAt === undefined ? '' : ms(fault.newLeaderAt - fault.start),
        [fault.outcome, fault.note].filter((text) => text !== undefined).join('; '),
      ]),
    )
    .join('');
  const kinds = Object.entries(figures.byKind)
    .map(([kind, tally]) => row([kind, tally.ok, tally.failed, tally.indeterminate]))
    .join('');
  const phases = figures.phases.map((phase) => row([phase.name, `${(phase.startMs / 1000).toFixed(1)}–${(phase.endMs / 1000).toFixed(1)} s`, phase.okPerSecond, phase.errorsPerSecond])).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoal chaos — seed ${report.seed} — ${escapeHtml(verdictText(report))}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
h1 .ok { color: #1b998b; } h1 .fail { color: #c0392b; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; font-size: 14px; }
tr.ok td:first-child { color: #1b998b; font-weight: bold; } tr.fail td:first-child { color: #c0392b; font-weight: bold; }
pre { font-size: 12px; background: #f6f6f6; padding: 6px; overflow-x: auto; }
</style></head><body>
<h1>shoal chaos: <span class="${report.ok ? 'ok' : 'fail'}">${escapeHtml(verdictText(report))}</span></h1>
<p>Seed ${report.seed}, started ${escapeHtml(report.startedAt)}, workload ${(report.workloadMs / 1000).toFixed(1)} s;
${report.cluster.nodes} storage nodes, ${report.cluster.routers} routers, ${report.cluster.partitions} partitions a table (ids ${report.cluster.partitionIds.join(', ')});
${report.workload.clients} clients over ${report.workload.keys} keys of each kind; faults ${escapeHtml(report.workload.faultKinds.join(', ') || 'none')}.
Reproduce: <code>npm run chaos -- --seed ${report.seed} --duration ${Math.round(report.workload.durationMs / 1000)}s --faults ${escapeHtml(report.workload.faultKinds.join(',') || 'none')}</code></p>
<h2>Timeline</h2>
${timelineSvg(report)}
<h2>Verdict</h2>
<table>${row(['', 'kind', 'check', 'result'], true)}${checks}</table>
<h2>Operations</h2>
<p>${figures.total.ok} ok, ${figures.total.failed} failed, ${figures.total.indeterminate} indeterminate.</p>
<table>${row(['kind', 'ok', 'failed', 'indeterminate'], true)}${kinds}</table>
<table>${row(['phase', 'time', 'ok/s', 'errors/s'], true)}${phases}</table>
<p>Latency of acknowledged requests: p50 ${escapeHtml(ms(figures.latency.p50Ms))}, p99 ${escapeHtml(ms(figures.latency.p99Ms))}.</p>
<table>${row(['error', 'count'], true)}${Object.entries(figures.errors).sort((a, b) => b[1] - a[1]).map(([type, count]) => row([type, count])).join('')}</table>
<h2>Faults</h2>
<p>Unavailability per fault: ${escapeHtml(spreadText(figures.unavailability))}. Time to a new leader: ${escapeHtml(spreadText(figures.timeToNewLeader))}.
Recovery to ready: ${escapeHtml(spreadText(figures.recovery))}. Longest leaderless window: ${escapeHtml(ms(figures.longestLeaderlessMs))}.</p>
<table>${row(['start', 'kind', 'target', 'partition', 'what', 'healed', 'ready', 'new leader after', 'outcome, note'], true)}${faults}</table>
</body></html>
`;
}
