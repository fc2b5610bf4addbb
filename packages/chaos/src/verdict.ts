/**
 * The verdict over what the clients recorded: linearizability per key, and the properties a
 * linearizability check over registers alone would not state directly (appends, counters,
 * transactions, eventual reads, leadership).
 */
import { checkKvHistory, formatHistory } from '@shoal/linearizability';
import type { KvOperation } from '@shoal/linearizability';
import { keepsMajority } from './faults.ts';
import type { FaultRecord } from './faults.ts';
import type { LeaderlessWindow } from './observer.ts';
import type { FinalState, Recorder } from './workload.ts';
import { countOf } from './workload.ts';

export interface Check {
  name: string;
  /**
   * safety: what the cluster promises whatever happens (a violation is a bug); liveness: how soon
   * it recovers, which depends on the machine's load as much as on the code.
   */
  kind: 'safety' | 'liveness';
  ok: boolean;
  /** One line: what was checked and found. */
  summary: string;
  /** On failure: the evidence (operations, explanation). */
  details?: string;
}

export interface VerdictInput {
  recorder: Recorder;
  final: FinalState;
  leaderless: LeaderlessWindow[];
  /** The faults injected: a window counts against the bound only from when a majority was back. */
  faults: readonly FaultRecord[];
  leaderlessBoundMs: number;
  checkTimeoutMs: number;
  /** Processes that exited without being killed. */
  crashes: string[];
  /** Processes that did not answer /readyz again once the faults were over. */
  notReady: string[];
}

/** At most this many offending examples are listed in a failed check. */
const EXAMPLES = 5;
/** Operations of a failing key shown in full (the explanation has the essential prefix). */
const HISTORY_LINES = 60;

function examples(lines: string[]): string {
  return lines.slice(0, EXAMPLES).join('\n') + (lines.length > EXAMPLES ? `\n… and ${lines.length - EXAMPLES} more` : '');
}

function checkLinearizable(history: readonly KvOperation[], timeoutMs: number): Check {
  const started = performance.now();
  const result = checkKvHistory(history, { timeoutMs });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const keys = new Set(history.map((op) => op.key)).size;
  const name = 'linearizable (strong reads, writes, conditional writes, appends; per key)';
  if (result.ok) return { name, kind: 'safety', ok: true, summary: `${history.length} operations on ${keys} keys linearizable (checked in ${seconds} s)` };
  if (result.failure === undefined) {
    return { name, kind: 'safety', ok: false, summary: `undecided: the checker ran out of time (${timeoutMs / 1000} s) after ${result.keysChecked} of ${keys} keys` };
  }
  const shown = formatHistory(result.failure.operations).split('\n');
  const history_ = shown.length > HISTORY_LINES ? [...shown.slice(0, HISTORY_LINES), `… ${shown.length - HISTORY_LINES} more`] : shown;
  return {
    name,
    kind: 'safety',
    ok: false,
    summary: `VIOLATION on key ${result.failure.key}`,
    details: `${result.failure.explanation}\n\nEvery operation on the key (times in ms since the start):\n${history_.join('\n')}`,
  };
}

/** Values (or list elements) each key was written with by operations that may have taken effect, with their call times. */
function writesByKey(history: readonly KvOperation[]): Map<string, Map<string, number>> {
  const writes = new Map<string, Map<string, number>>();
  for (const op of history) {
    if (op.type === 'get' || op.type === 'read-list') continue;
    if (op.type === 'cas' && op.ok === false) continue;
    let values = writes.get(op.key);
    if (values === undefined) writes.set(op.key, (values = new Map()));
    values.set(op.value, op.call);
  }
  return writes;
}

function checkLists(history: readonly KvOperation[], final: FinalState): Check {
  const problems: string[] = [];
  const appended = writesByKey(history);
  let acknowledged = 0;
  for (const [key, list] of final.lists) {
    const present = new Set(list);
    if (present.size !== list.length) {
      const seen = new Set<string>();
      const duplicated = list.filter((element) => (seen.has(element) ? true : (seen.add(element), false)));
      problems.push(`${key}: duplicated append(s) ${JSON.stringify([...new Set(duplicated)])}`);
    }
    const known = appended.get(key) ?? new Map<string, number>();
    const unknown = list.filter((element) => !known.has(element));
    if (unknown.length > 0) problems.push(`${key}: element(s) nobody appended ${JSON.stringify(unknown)}`);
    for (const op of history) {
      if (op.key !== key || op.type !== 'append' || op.return === undefined) continue;
      acknowledged++;
      if (!present.has(op.value)) problems.push(`${key}: acknowledged append ${JSON.stringify(op.value)} (p${op.process}, returned at ${op.return.toFixed(0)} ms) missing from the final list`);
    }
  }
  return {
    name: 'no lost or duplicated appends',
    kind: 'safety',
    ok: problems.length === 0,
    summary: problems.length === 0 ? `${acknowledged} acknowledged appends all present once in the final lists` : `${problems.length} problem(s)`,
    details: problems.length === 0 ? undefined : examples(problems),
  };
}

function checkCounters(recorder: Recorder, final: FinalState): Check {
  const problems: string[] = [];
  const lines: string[] = [];
  const cas = new Map<string, { ok: number; indeterminate: number }>();
  for (const op of recorder.history) {
    if (op.type !== 'cas') continue;
    const tally = cas.get(op.key) ?? { ok: 0, indeterminate: 0 };
    if (op.return === undefined) tally.indeterminate++;
    else if (op.ok === true) tally.ok++;
    cas.set(op.key, tally);
  }
  for (const [key, tally] of cas) {
    if (!final.registers.has(key)) continue;
    const count = countOf(final.registers.get(key) ?? null);
    const exact = count >= tally.ok && count <= tally.ok + tally.indeterminate;
    lines.push(`${key} cas: ${count} (${tally.ok} ok + up to ${tally.indeterminate} indeterminate)`);
    if (!exact) problems.push(`${key}: compare-and-set count ${count}, but ${tally.ok} succeeded and ${tally.indeterminate} may have`);
  }
  for (const [key, tally] of recorder.adds) {
    const count = final.counts.get(key);
    if (count === undefined) continue;
    if (count < tally.ok || count > tally.ok + tally.indeterminate) {
      problems.push(`${key}: ADD counter ${count}, but ${tally.ok} increments succeeded and ${tally.indeterminate} may have`);
    }
  }
  const adds = [...recorder.adds.values()].reduce((sum, tally) => sum + tally.ok, 0);
  return {
    name: 'exact counters (compare-and-set and ADD)',
    kind: 'safety',
    ok: problems.length === 0,
    summary: problems.length === 0 ? `${cas.size} compare-and-set counters and ${recorder.adds.size} ADD counters (${adds} acknowledged increments) exact` : `${problems.length} wrong counter(s)`,
    details: problems.length === 0 ? undefined : examples(problems),
  };
}

function checkEventualReads(recorder: Recorder): Check {
  const written = writesByKey(recorder.history);
  const problems: string[] = [];
  for (const read of recorder.eventualReads) {
    const values = written.get(read.key) ?? new Map<string, number>();
    const wasWritten = (value: string): boolean => (values.get(value) ?? Infinity) <= read.return;
    const where = `${read.key} (p${read.client}, ${read.call.toFixed(0)}..${read.return.toFixed(0)} ms)`;
    if (Array.isArray(read.output)) {
      const bad = read.output.filter((element) => !wasWritten(element));
      if (bad.length > 0) problems.push(`${where}: list elements never appended ${JSON.stringify(bad)}`);
      if (new Set(read.output).size !== read.output.length) problems.push(`${where}: list with a duplicated element ${JSON.stringify(read.output)}`);
    } else if (read.output !== null && !wasWritten(read.output)) {
      problems.push(`${where}: value never written ${JSON.stringify(read.output)}`);
    }
  }
  return {
    name: 'eventual reads return only written values',
    kind: 'safety',
    ok: problems.length === 0,
    summary: problems.length === 0 ? `${recorder.eventualReads.length} eventually consistent reads, each of a value some write had written` : `${problems.length} read(s) of values never written`,
    details: problems.length === 0 ? undefined : examples(problems),
  };
}

function checkTransactions(recorder: Recorder, final: FinalState): Check {
  const problems: string[] = [];
  const shown = (keys: readonly string[], values: readonly (string | null | undefined)[]): string => keys.map((key, index) => `${key}=${JSON.stringify(values[index])}`).join(' ');
  for (const read of recorder.transactionReads) {
    if (new Set(read.values).size > 1) problems.push(`read at ${read.call.toFixed(0)}..${read.return.toFixed(0)} ms: ${shown(read.keys, read.values)}`);
  }
  let groups = 0;
  for (const keys of final.transactionGroups) {
    const values = keys.map((key) => final.registers.get(key));
    // An item never read at the end is the final-reads check's finding.
    if (values.includes(undefined)) continue;
    groups++;
    if (new Set(values).size > 1) problems.push(`at the end: ${shown(keys, values)}`);
  }
  const cross = recorder.transactionReads.filter((read) => new Set(read.keys.map((key) => key.split('/')[0])).size > 1).length;
  return {
    name: 'transactions all-or-nothing',
    kind: 'safety',
    ok: problems.length === 0,
    summary:
      problems.length === 0
        ? `${recorder.transactionReads.length} transactional reads (${cross} across partitions) and ${groups} final groups saw both items of every transaction or neither`
        : `${problems.length} torn transaction(s)`,
    details: problems.length === 0 ? undefined : examples(problems),
  };
}

function checkFinalReads(final: FinalState): Check {
  return {
    name: 'every key readable at the end (acknowledged writes present)',
    kind: 'safety',
    ok: final.unread.length === 0,
    summary:
      final.unread.length === 0
        ? 'a strong read of every key succeeded after the faults; its value is part of the linearizability check'
        : `${final.unread.length} key(s) never answered a strong read at the end`,
    details: final.unread.length === 0 ? undefined : examples(final.unread),
  };
}

/**
 * When a leaderless window starts to count against the bound: its start, or the last moment within
 * it at which the group got a majority of its replicas up and connected back, under every fault
 * active then. A fault lasts until its target answers /readyz again: one that never did (killed
 * again first, or stuck, which the readiness check reports) is never back.
 */
export function countedFrom(window: LeaderlessWindow, faults: readonly FaultRecord[]): number {
  const active = faults.flatMap((fault) => (fault.outage === undefined ? [] : [{ outage: fault.outage, start: fault.start, end: fault.ready ?? window.end }]));
  const moments = [...new Set([window.start, ...active.flatMap(({ start, end }) => [start, end])])]
    .filter((moment) => moment >= window.start && moment < window.end)
    .sort((a, b) => a - b);
  let from = window.start;
  for (const [index, moment] of moments.entries()) {
    const outages = active.filter(({ start, end }) => start <= moment && moment < end).map(({ outage }) => outage);
    if (!keepsMajority(window.replicas, outages)) from = moments[index + 1] ?? window.end;
  }
  return from;
}

function checkLeadership(windows: readonly LeaderlessWindow[], faults: readonly FaultRecord[], boundMs: number): Check {
  const counted = windows.map((window) => ({ window, ms: window.end - countedFrom(window, faults) }));
  const longest = counted.reduce((max, { ms }) => Math.max(max, ms), 0);
  const over = counted.filter(({ ms }) => ms > boundMs);
  const where = (window: LeaderlessWindow): string => (window.partition === 0 ? 'meta group' : `partition ${window.partition}`);
  return {
    name: `no partition leaderless for more than ${boundMs / 1000} s once a majority of its replicas is back`,
    kind: 'liveness',
    ok: over.length === 0,
    summary: `longest leaderless window with a majority up ${(longest / 1000).toFixed(1)} s (meta leader's view, 1 s samples)`,
    details:
      over.length === 0
        ? undefined
        : examples(over.map(({ window, ms }) => `${where(window)}: ${(window.start / 1000).toFixed(1)}..${(window.end / 1000).toFixed(1)} s (${(ms / 1000).toFixed(1)} s with a majority up)`)),
  };
}

function checkCrashes(crashes: readonly string[]): Check {
  return {
    name: 'no process exited by itself',
    kind: 'safety',
    ok: crashes.length === 0,
    summary: crashes.length === 0 ? 'only the processes the faults killed went down' : `${crashes.length} unexpected exit(s)`,
    details: crashes.length === 0 ? undefined : examples([...crashes]),
  };
}

function checkReady(notReady: readonly string[]): Check {
  return {
    name: 'every process ready again after the faults',
    kind: 'liveness',
    ok: notReady.length === 0,
    summary: notReady.length === 0 ? 'every node and router answered /readyz once the faults were over' : `${notReady.length} process(es) never ready again`,
    details: notReady.length === 0 ? undefined : examples([...notReady]),
  };
}

export function judge(input: VerdictInput): Check[] {
  const { recorder, final } = input;
  return [
    checkLinearizable(recorder.history, input.checkTimeoutMs),
    checkFinalReads(final),
    checkLists(recorder.history, final),
    checkCounters(recorder, final),
    checkTransactions(recorder, final),
    checkEventualReads(recorder),
    checkLeadership(input.leaderless, input.faults, input.leaderlessBoundMs),
    checkCrashes(input.crashes),
    checkReady(input.notReady),
  ];
}
