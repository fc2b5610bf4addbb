import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import type { RequestObserver } from '@shoal/router';
import { BUCKETS_SECONDS } from './partition-metrics.ts';

/**
 * A router's DynamoDB requests by operation (startRouter's onRequest): answered, failed by DynamoDB
 * error type, their durations, and those refused for throughput, the names the Grafana dashboard
 * (deploy/) plots.
 */

/** DynamoDB's answers to a request over a throughput limit (provisioned, partition or account). */
const THROUGHPUT_ERRORS: ReadonlySet<string> = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded']);

export function requestMetrics(registry: Registry): RequestObserver {
  const requests = new Counter({
    name: 'shoal_router_requests_total',
    help: 'DynamoDB requests answered, by operation',
    labelNames: ['operation'],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'shoal_router_request_errors_total',
    help: 'DynamoDB requests answered with an error, by operation and DynamoDB error type',
    labelNames: ['operation', 'error'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'shoal_router_request_duration_seconds',
    help: 'Time from a DynamoDB request to its answer, by operation',
    labelNames: ['operation'],
    buckets: BUCKETS_SECONDS,
    registers: [registry],
  });
  const throttled = new Counter({
    name: 'shoal_router_throttled_requests_total',
    help: 'DynamoDB requests refused with a throughput exception, by operation',
    labelNames: ['operation'],
    registers: [registry],
  });
  return (operation, seconds, errorType) => {
    requests.inc({ operation });
    duration.observe({ operation }, seconds);
    if (errorType === undefined) return;
    errors.inc({ operation, error: errorType });
    if (THROUGHPUT_ERRORS.has(errorType)) throttled.inc({ operation });
  };
}
