/** One measured phase of closed-loop load, with the CPU both sides spent on it. */
import type { Endpoint } from './dynamodb-http.ts';
import { drivePipelined } from './pipelined-http.ts';

export interface LoadOptions {
  concurrency: number;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Hard cap on requests per phase, so no loop depends on the clock alone. */
  maxRequests: number;
  /** Reads the server's CPU seconds so far, to charge the measured phase with its share. */
  serverCpuSeconds(): number | undefined;
  /** Other running totals of the target (CPU by role, Raft events), read around the measured phase. */
  probe?(): Promise<Record<string, number> | undefined>;
  /** Read the probe every second of the measured phase too, to tell in which second events happened. */
  probeEverySecond?: boolean;
}

export interface LoadResult {
  /** Successful requests in the measured phase. */
  ops: number;
  errors: number;
  /** One error, to show what went wrong. */
  errorSample: string | undefined;
  seconds: number;
  /** Latencies of the successful requests, ascending, in milliseconds. */
  latenciesMs: Float64Array;
  /** CPU seconds the server used in the measured phase, and the load generator itself. */
  serverCpuSeconds: number | undefined;
  clientCpuSeconds: number;
  /** How much each of the probe's totals grew during the measured phase (absent without a probe). */
  probed?: Record<string, number>;
  /** The measured phase second by second, to see whether a tail is one stall or spread out. */
  timeline: TimelineSecond[];
}

export interface TimelineSecond {
  /** Requests completed in this second of the phase. */
  ops: number;
  p99Ms: number;
  maxMs: number;
  /** The probe's totals (other than CPU) that grew during this second (probeEverySecond), e.g. a split. */
  events?: Record<string, number>;
}

/** Latencies grouped by the second of the phase their request completed in. */
function timelineOf(latenciesMs: readonly number[], completedAtMs: readonly number[]): TimelineSecond[] {
  const bySecond: number[][] = [];
  for (let i = 0; i < latenciesMs.length; i++) (bySecond[Math.floor(completedAtMs[i] / 1000)] ??= []).push(latenciesMs[i]);
  return Array.from(bySecond, (latencies = []) => {
    const sorted = Float64Array.from(latencies).sort();
    return { ops: sorted.length, p99Ms: percentile(sorted, 0.99), maxMs: percentile(sorted, 1) };
  });
}

export async function runLoad(endpoint: Endpoint, nextRequest: () => Buffer, options: LoadOptions): Promise<LoadResult> {
  const phase = (durationMs: number) =>
    drivePipelined(endpoint, nextRequest, {
      concurrency: options.concurrency,
      connections: options.connections,
      durationMs,
      maxRequests: options.maxRequests,
    });
  if (options.warmupMs > 0) await phase(options.warmupMs);
  const probedBefore = await options.probe?.();
  const serverBefore = options.serverCpuSeconds();
  const clientBefore = process.cpuUsage();
  // Read about when each second of the phase ends (the probe's own answer time blurs it by its latency).
  const secondly: Array<Promise<Record<string, number> | undefined>> = [];
  const ticker = options.probeEverySecond === true && options.probe !== undefined ? setInterval(() => secondly.push(options.probe!()), 1000) : undefined;
  const measured = await phase(options.durationMs);
  clearInterval(ticker);
  const clientUsed = process.cpuUsage(clientBefore);
  const serverAfter = options.serverCpuSeconds();
  const probedAfter = await options.probe?.();
  const probed =
    probedBefore === undefined || probedAfter === undefined
      ? undefined
      : Object.fromEntries(Object.entries(probedAfter).map(([name, value]) => [name, value - (probedBefore[name] ?? 0)]));
  const { completedAtMs, ...counts } = measured;
  const timeline = timelineOf(measured.latenciesMs, completedAtMs);
  if (probedBefore !== undefined) {
    let previous = probedBefore;
    for (const [second, totals] of (await Promise.all(secondly)).entries()) {
      if (totals === undefined || timeline[second] === undefined) continue;
      // CPU, page faults and plain fsyncs grow every second: not events.
      const grown = Object.entries(totals).filter(
        ([name, value]) => !name.startsWith('cpu:') && !name.startsWith('faults:') && name !== 'raftFsyncs' && value > (previous[name] ?? 0),
      );
      if (grown.length > 0) timeline[second].events = Object.fromEntries(grown.map(([name, value]) => [name, value - (previous[name] ?? 0)]));
      previous = totals;
    }
  }
  return {
    ...(probed === undefined ? {} : { probed }),
    ...counts,
    timeline,
    latenciesMs: Float64Array.from(measured.latenciesMs).sort(),
    serverCpuSeconds: serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
    clientCpuSeconds: (clientUsed.user + clientUsed.system) / 1e6,
  };
}

/** The latency below which a fraction `p` of requests completed (nearest rank). */
export function percentile(sortedMs: Float64Array, p: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  return sortedMs[Math.min(sortedMs.length - 1, Math.max(0, Math.ceil(p * sortedMs.length) - 1))];
}
