/**
 * Summarizes a V8 .cpuprofile (what `npm run bench -- ... --cpu-prof <dir>` writes per server process):
 * self time per function and per file, or the time of each function with its callees (inclusive),
 * optionally in a window of seconds since the profile started (`--timeline` prints busy ms per second
 * to find the phases: pre-load, each workload).
 *
 *   npx node scripts/cpu-profile.ts <file.cpuprofile> [--top 40] [--from s] [--to s] [--inclusive] [--timeline]
 *
 * Samples are counted, not timed: under load a process waits for a core between samples, and the
 * gap would be charged to whatever ran last.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '40' },
    from: { type: 'string' },
    to: { type: 'string' },
    inclusive: { type: 'boolean', default: false },
    timeline: { type: 'boolean', default: false },
  },
});
const [file] = positionals;
if (file === undefined) {
  console.error('usage: npx node scripts/cpu-profile.ts <file.cpuprofile> [--top 40] [--from s] [--to s] [--inclusive] [--timeline]');
  process.exit(2);
}

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const parents = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
const fileOf = (node: ProfileNode): string => node.callFrame.url.replace(/^file:\/\/.*?\/(packages|scripts|node_modules)\//, '$1/') || node.callFrame.functionName;
const label = (node: ProfileNode): string =>
  node.callFrame.url === '' ? node.callFrame.functionName || '(native)' : `${node.callFrame.functionName || '(anonymous)'} ${fileOf(node)}:${node.callFrame.lineNumber + 1}`;
const isIdle = (node: ProfileNode): boolean => node.callFrame.functionName === '(idle)';

// Each sample's time since the start, in seconds.
const at: number[] = [];
let clock = 0;
for (const delta of profile.timeDeltas) {
  clock += delta;
  at.push(clock / 1e6);
}

if (values.timeline) {
  const perSecond = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    const node = nodes.get(id);
    if (node === undefined || isIdle(node)) return;
    const second = Math.floor(at[index] ?? 0);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  });
  const interval = clock / 1e3 / Math.max(1, profile.samples.length);
  console.log(`second  busy samples (${interval.toFixed(2)} ms apart on average)`);
  for (const [second, count] of [...perSecond].sort((a, b) => a[0] - b[0])) console.log(`${String(second).padStart(6)}  ${count}`);
  process.exit(0);
}

const from = values.from === undefined ? -Infinity : Number(values.from);
const to = values.to === undefined ? Infinity : Number(values.to);
const top = Number(values.top);
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
let busy = 0;
profile.samples.forEach((id, index) => {
  const time = at[index] ?? 0;
  const node = nodes.get(id);
  if (time < from || time > to || node === undefined || isIdle(node)) return;
  busy++;
  if (!values.inclusive) {
    byFunction.set(label(node), (byFunction.get(label(node)) ?? 0) + 1);
    byFile.set(fileOf(node), (byFile.get(fileOf(node)) ?? 0) + 1);
    return;
  }
  // Inclusive: every function on the stack, once per sample (recursion counted once).
  const seen = new Set<string>();
  for (let current: number | undefined = id; current !== undefined; current = parents.get(current)) {
    const frame = nodes.get(current);
    if (frame === undefined) break;
    const name = label(frame);
    if (seen.has(name)) continue;
    seen.add(name);
    byFunction.set(name, (byFunction.get(name) ?? 0) + 1);
  }
});

const print = (title: string, counts: Map<string, number>): void => {
  console.log(`--- ${title}`);
  for (const [name, count] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${String(count).padStart(8)} ${((100 * count) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${name}`);
  }
};
console.log(`${busy} busy samples${values.from === undefined && values.to === undefined ? '' : ` between ${from} s and ${to} s`}`);
print(values.inclusive ? 'by function, callees included' : 'self, by function', byFunction);
if (!values.inclusive) print('self, by file', byFile);
