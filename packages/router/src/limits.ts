import type { RouterOperationHandler } from './request.ts';

/** Account-level operations: DescribeLimits and DescribeEndpoints. */

/** DynamoDB's default quotas for a new account (the numbers DescribeLimits reports there). */
export const DEFAULT_LIMITS = {
  AccountMaxReadCapacityUnits: 80_000,
  AccountMaxWriteCapacityUnits: 80_000,
  TableMaxReadCapacityUnits: 40_000,
  TableMaxWriteCapacityUnits: 40_000,
} as const;

/** How long a client may cache the endpoint list, as DynamoDB answers. */
const ENDPOINT_CACHE_MINUTES = 1440;

export const accountOperations: Record<string, RouterOperationHandler> = {
  DescribeLimits: async () => ({ ...DEFAULT_LIMITS }),
  // Every router serves every table, so the endpoint is simply the one the client reached.
  DescribeEndpoints: async (_body, _ctx, request) => ({
    Endpoints: [{ Address: request.host, CachePeriodInMinutes: ENDPOINT_CACHE_MINUTES }],
  }),
};
