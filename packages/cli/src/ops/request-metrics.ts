import type { RequestObserver } from '@shoal/router';
import { CountedCounter, CountedHistogram } from './counted-metrics.ts';
import type { CountedBuckets, CountedValue } from './counted-metrics.ts';
import type { Series } from './metrics.ts';
import { BUCKETS_SECONDS } from './partition-metrics.ts';

/**
 * A router's DynamoDB requests by operation (startRouter's onRequest): answered, failed by DynamoDB
 * error type, their durations, and those refused for throughput, the names the Grafana dashboard
 * (deploy/) plots.
 */

/** DynamoDB's answers to a request over a throughput limit (provisioned, partition or account). */
const THROUGHPUT_ERRORS: ReadonlySet<string> = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded']);

export interface RequestMetrics {
  /** startRouter's onRequest. */
  readonly observe: RequestObserver;
  /** What was counted so far, for createProcessMetrics (a source's `series`). */
  series(): Series[];
}

/** One operation's counts, resolved on its first request. */
interface OperationCounts {
  requests: CountedValue;
  duration: CountedBuckets;
  throttled: CountedValue;
}

export function requestMetrics(): RequestMetrics {
  const requests = new CountedCounter('shoal_router_requests_total', 'DynamoDB requests answered, by operation', ['operation']);
  const errors = new CountedCounter('shoal_router_request_errors_total', 'DynamoDB requests answered with an error, by operation and DynamoDB error type', ['operation', 'error']);
  const duration = new CountedHistogram('shoal_router_request_duration_seconds', 'Time from a DynamoDB request to its answer, by operation', 'operation', BUCKETS_SECONDS);
  const throttled = new CountedCounter('shoal_router_throttled_requests_total', 'DynamoDB requests refused with a throughput exception, by operation', ['operation']);
  const byOperation = new Map<string, OperationCounts>();
  return {
    observe: (operation, seconds, errorType) => {
      let counts = byOperation.get(operation);
      if (counts === undefined) {
        counts = { requests: requests.labels(operation), duration: duration.labels(operation), throttled: throttled.labels(operation) };
        byOperation.set(operation, counts);
      }
      counts.requests.inc();
      counts.duration.observe(seconds);
      if (errorType === undefined) return;
      errors.labels(operation, errorType).inc();
      if (THROUGHPUT_ERRORS.has(errorType)) counts.throttled.inc();
    },
    series: () => [requests.series(), errors.series(), duration.series(), throttled.series()],
  };
}
