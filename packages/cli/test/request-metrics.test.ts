import { describe, expect, it } from 'vitest';
import { createProcessMetrics } from '../src/ops/metrics.ts';
import { requestMetrics } from '../src/ops/request-metrics.ts';

/** The lines of one metric (HELP, TYPE and samples) in a scrape. */
function linesOf(text: string, name: string): string[] {
  const own = (line: string): boolean => ['{', '_bucket{', '_sum{', '_count{'].some((after) => line.startsWith(`${name}${after}`));
  return text.split('\n').filter((line) => line.startsWith(`# HELP ${name} `) || line.startsWith(`# TYPE ${name} `) || own(line));
}

describe('requestMetrics', () => {
  it('counts and times requests by operation, errors by type, and throughput refusals apart, in the exposition the dashboard reads', async () => {
    const metrics = requestMetrics();
    const process = createProcessMetrics([{ prefix: 'shoal_router', read: () => ({}), series: () => metrics.series() }]);
    const empty = await process.scrape();
    // Declared before any request (the deploy manifests test reads the types), no sample yet.
    expect(linesOf(empty, 'shoal_router_request_duration_seconds')).toEqual([
      '# HELP shoal_router_request_duration_seconds Time from a DynamoDB request to its answer, by operation',
      '# TYPE shoal_router_request_duration_seconds histogram',
    ]);
    expect(linesOf(empty, 'shoal_router_requests_total')).toEqual(['# HELP shoal_router_requests_total DynamoDB requests answered, by operation', '# TYPE shoal_router_requests_total counter']);

    metrics.observe('PutItem', 0.002);
    metrics.observe('PutItem', 0.3, 'ConditionalCheckFailedException');
    metrics.observe('PutItem', 0.004, 'ProvisionedThroughputExceededException');
    metrics.observe('Query', 0.0005, 'ThrottlingException');
    metrics.observe('GetItem', 0.001);
    metrics.observe('GetItem', 11);
    const text = await process.scrape();
    expect(linesOf(text, 'shoal_router_requests_total')).toEqual([
      '# HELP shoal_router_requests_total DynamoDB requests answered, by operation',
      '# TYPE shoal_router_requests_total counter',
      'shoal_router_requests_total{operation="PutItem"} 3',
      'shoal_router_requests_total{operation="Query"} 1',
      'shoal_router_requests_total{operation="GetItem"} 2',
    ]);
    expect(linesOf(text, 'shoal_router_request_errors_total')).toEqual([
      '# HELP shoal_router_request_errors_total DynamoDB requests answered with an error, by operation and DynamoDB error type',
      '# TYPE shoal_router_request_errors_total counter',
      'shoal_router_request_errors_total{operation="PutItem",error="ConditionalCheckFailedException"} 1',
      'shoal_router_request_errors_total{operation="PutItem",error="ProvisionedThroughputExceededException"} 1',
      'shoal_router_request_errors_total{operation="Query",error="ThrottlingException"} 1',
    ]);
    expect(linesOf(text, 'shoal_router_throttled_requests_total')).toEqual([
      '# HELP shoal_router_throttled_requests_total DynamoDB requests refused with a throughput exception, by operation',
      '# TYPE shoal_router_throttled_requests_total counter',
      'shoal_router_throttled_requests_total{operation="PutItem"} 1',
      'shoal_router_throttled_requests_total{operation="Query"} 1',
    ]);
    const bounds = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'];
    const histogram = (operation: string, cumulative: number[], sum: string): string[] => [
      ...bounds.map((le, index) => `shoal_router_request_duration_seconds_bucket{operation="${operation}",le="${le}"} ${cumulative[index]}`),
      `shoal_router_request_duration_seconds_sum{operation="${operation}"} ${sum}`,
      `shoal_router_request_duration_seconds_count{operation="${operation}"} ${cumulative[cumulative.length - 1]}`,
    ];
    expect(linesOf(text, 'shoal_router_request_duration_seconds')).toEqual([
      '# HELP shoal_router_request_duration_seconds Time from a DynamoDB request to its answer, by operation',
      '# TYPE shoal_router_request_duration_seconds histogram',
      // A bound is inclusive: 0.001 counts in le="0.001"; 11 s only in +Inf.
      ...histogram('PutItem', [0, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3], String(0.002 + 0.3 + 0.004)),
      ...histogram('Query', [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], '0.0005'),
      ...histogram('GetItem', [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2], '11.001'),
    ]);
  });
});
