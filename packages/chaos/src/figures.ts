/** The run's numbers: operations by outcome, throughput by phase, unavailability per fault, a per-second timeline. */
import type { FaultRecord } from './faults.ts';
import type { LeaderlessWindow } from './observer.ts';
import type { Completion, OperationKind, RequestRecord } from './workload.ts';

export type Tally = Record<Completion, number>;

export interface Spread {
  count: number;
  p50Ms: number | undefined;
  maxMs: number | undefined;
}

export interface Phase {
  name: 'before' | 'during' | 'after';
  startMs: number;
  endMs: number;
  /** Acknowledged requests per second. */
  okPerSecond: number;
  /** Requests that failed or were indeterminate, per second. */
  errorsPerSecond: number;
}

export interface TimelineBin {
  /** Start of the second, ms since the start. */
  at: number;
  ok: number;
  failed: number;
  indeterminate: number;
}

export interface Figures {
  total: Tally;
  byKind: Partial<Record<OperationKind, Tally>>;
  /** Error types (or reasons) and how often they occurred. */
  errors: Record<string, number>;
  phases: Phase[];
  /** Per fault: the longest a key stayed unavailable after it (see unavailabilityOf). */
  unavailability: Spread;
  /** kill-leader faults: from the kill to another node reported leading. */
  timeToNewLeader: Spread;
  /** From the kill or pause until the target answered /readyz again. */
  recovery: Spread;
  longestLeaderlessMs: number;
  /** Latency of the acknowledged requests. */
  latency: { p50Ms: number | undefined; p99Ms: number | undefined };
  timeline: TimelineBin[];
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return { count: 0, p50Ms: undefined, maxMs: undefined };
  return { count: sorted.length, p50Ms: Math.round(sorted[Math.floor((sorted.length - 1) / 2)]), maxMs: Math.round(sorted[sorted.length - 1]) };
}

/** A refusal that is part of the workload's semantics, not unavailability. */
function isExpectedRefusal(request: RequestRecord): boolean {
  return request.error === 'ConditionalCheckFailedException';
}

/**
 * How long the fault made the cluster unavailable: for each key, from the first request on it that
 * failed (or was indeterminate) after the fault began to the end of the next request on it that
 * succeeded (or to the window's end when none did); the longest over the keys. The window runs
 * from the fault's start to the next fault's start.
 */
export function unavailabilityOf(requests: readonly RequestRecord[], start: number, end: number): number {
  const firstFailure = new Map<string, number>();
  let longest = 0;
  for (const request of [...requests].sort((a, b) => a.start - b.start)) {
    if (request.start < start || request.start >= end) continue;
    const ok = request.completion === 'ok' || isExpectedRefusal(request);
    for (const key of request.keys) {
      const failedAt = firstFailure.get(key);
      if (!ok && failedAt === undefined) firstFailure.set(key, request.start);
      if (ok && failedAt !== undefined) {
        longest = Math.max(longest, request.end - failedAt);
        firstFailure.delete(key);
      }
    }
  }
  for (const failedAt of firstFailure.values()) longest = Math.max(longest, end - failedAt);
  return longest;
}

function phase(name: Phase['name'], requests: readonly RequestRecord[], startMs: number, endMs: number): Phase {
  const seconds = Math.max(0.001, (endMs - startMs) / 1000);
  let ok = 0;
  let errors = 0;
  for (const request of requests) {
    if (request.end < startMs || request.end >= endMs) continue;
    if (request.completion === 'ok' || isExpectedRefusal(request)) ok++;
    else errors++;
  }
  return { name, startMs, endMs, okPerSecond: Math.round(ok / seconds), errorsPerSecond: Math.round((errors / seconds) * 10) / 10 };
}

function latencyOf(requests: readonly RequestRecord[]): Figures['latency'] {
  const sorted = requests.filter((request) => request.completion === 'ok').map((request) => request.end - request.start).sort((a, b) => a - b);
  const at = (share: number): number | undefined => (sorted.length === 0 ? undefined : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))]));
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

export function computeFigures(requests: readonly RequestRecord[], faults: readonly FaultRecord[], leaderless: readonly LeaderlessWindow[], workloadMs: number): Figures {
  const total: Tally = { ok: 0, failed: 0, indeterminate: 0 };
  const byKind: Partial<Record<OperationKind, Tally>> = {};
  const errors: Record<string, number> = {};
  const bins: TimelineBin[] = Array.from({ length: Math.ceil(workloadMs / 1000) }, (_, second) => ({ at: second * 1000, ok: 0, failed: 0, indeterminate: 0 }));
  for (const request of requests) {
    const completion = isExpectedRefusal(request) ? 'ok' : request.completion;
    total[completion]++;
    const tally = (byKind[request.kind] ??= { ok: 0, failed: 0, indeterminate: 0 });
    tally[completion]++;
    if (request.error !== undefined) errors[request.error] = (errors[request.error] ?? 0) + 1;
    const bin = bins[Math.min(bins.length - 1, Math.floor(request.end / 1000))];
    if (bin !== undefined) bin[completion]++;
  }
  const injected = faults.filter((fault) => fault.note === undefined || fault.healed !== undefined);
  const firstFault = injected[0]?.start ?? workloadMs;
  // Recovery may end after the workload (the last target ready only later): then there is no "after".
  const lastHealed = Math.min(workloadMs, injected.reduce((last, fault) => Math.max(last, fault.ready ?? fault.healed ?? fault.start), firstFault));
  const phases = [phase('before', requests, 0, firstFault)];
  if (injected.length > 0) phases.push(phase('during', requests, firstFault, lastHealed));
  if (injected.length > 0 && lastHealed < workloadMs) phases.push(phase('after', requests, lastHealed, workloadMs));
  const windows = injected.map((fault, index) => unavailabilityOf(requests, fault.start, injected[index + 1]?.start ?? workloadMs));
  return {
    total,
    byKind,
    errors,
    phases,
    unavailability: spread(windows),
    timeToNewLeader: spread(injected.flatMap((fault) => (fault.newLeaderAt === undefined ? [] : [fault.newLeaderAt - fault.start]))),
    recovery: spread(injected.flatMap((fault) => (fault.ready === undefined ? [] : [fault.ready - fault.start]))),
    longestLeaderlessMs: Math.round(leaderless.reduce((max, window) => Math.max(max, window.end - window.start), 0)),
    latency: latencyOf(requests),
    timeline: bins,
  };
}
