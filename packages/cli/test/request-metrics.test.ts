import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { requestMetrics } from '../src/ops/request-metrics.ts';

describe('requestMetrics', () => {
  it('counts and times requests by operation, errors by type, and throughput refusals apart', async () => {
    const registry = new Registry();
    const observe = requestMetrics(registry);
    observe('PutItem', 0.002);
    observe('PutItem', 0.3, 'ConditionalCheckFailedException');
    observe('PutItem', 0.004, 'ProvisionedThroughputExceededException');
    observe('Query', 0.0005, 'ThrottlingException');
    observe('GetItem', 0.001);

    const text = await registry.metrics();
    expect(text).toContain('shoal_router_requests_total{operation="PutItem"} 3');
    expect(text).toContain('shoal_router_requests_total{operation="GetItem"} 1');
    expect(text).toContain('shoal_router_request_errors_total{operation="PutItem",error="ConditionalCheckFailedException"} 1');
    expect(text).toContain('shoal_router_request_errors_total{operation="PutItem",error="ProvisionedThroughputExceededException"} 1');
    expect(text).toContain('shoal_router_request_errors_total{operation="Query",error="ThrottlingException"} 1');
    expect(text).not.toContain('shoal_router_request_errors_total{operation="GetItem"');
    expect(text).toContain('shoal_router_throttled_requests_total{operation="PutItem"} 1');
    expect(text).toContain('shoal_router_throttled_requests_total{operation="Query"} 1');
    expect(text).toContain('shoal_router_request_duration_seconds_count{operation="PutItem"} 3');
    expect(text).toContain('shoal_router_request_duration_seconds_bucket{le="0.005",operation="PutItem"} 2');
    expect(text).toContain('shoal_router_request_duration_seconds_bucket{le="0.001",operation="Query"} 1');
  });
});
