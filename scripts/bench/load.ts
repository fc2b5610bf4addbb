/** The closed-loop load generator: `concurrency` workers, each sending its next request as soon as the last one answers. */
import type { BenchRequest } from './workloads.ts';
import type { DynamoDbHttpClient } from './dynamodb-http.ts';

export interface LoadOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Hard cap on requests per phase, so no loop depends on the clock alone. */
  maxRequests: number;
  /** Reads the server's CPU seconds so far, to charge the measured phase with its share. */
  serverCpuSeconds(): number | undefined;
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
}

async function drive(
  client: DynamoDbHttpClient,
  nextRequest: () => BenchRequest,
  concurrency: number,
  durationMs: number,
  maxRequests: number,
): Promise<Omit<LoadResult, 'latenciesMs' | 'serverCpuSeconds' | 'clientCpuSeconds'> & { latenciesMs: number[] }> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let errorSample: string | undefined;
  let issued = 0;
  const start = performance.now();
  const until = start + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < until && issued < maxRequests) {
      issued++;
      const { operation, body } = nextRequest();
      const sent = performance.now();
      try {
        const response = await client.send(operation, body);
        if (response.status === 200) {
          latenciesMs.push(performance.now() - sent);
        } else {
          errors++;
          errorSample ??= `${operation}: HTTP ${response.status} ${response.body.slice(0, 200)}`;
        }
      } catch (error) {
        errors++;
        errorSample ??= `${operation}: ${(error as Error).message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ops: latenciesMs.length, errors, errorSample, seconds: (performance.now() - start) / 1000, latenciesMs };
}

export async function runLoad(client: DynamoDbHttpClient, nextRequest: () => BenchRequest, options: LoadOptions): Promise<LoadResult> {
  if (options.warmupMs > 0) await drive(client, nextRequest, options.concurrency, options.warmupMs, options.maxRequests);
  const serverBefore = options.serverCpuSeconds();
  const clientBefore = process.cpuUsage();
  const measured = await drive(client, nextRequest, options.concurrency, options.durationMs, options.maxRequests);
  const clientUsed = process.cpuUsage(clientBefore);
  const serverAfter = options.serverCpuSeconds();
  return {
    ...measured,
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
