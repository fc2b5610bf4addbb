import { DynamoDbError, getOwn, internalError, resourceNotFound } from '@shoal/model';
import type { PartitionClient, TableCatalog, TableRecord } from '@shoal/model';
import type { EngineContext } from './operation.ts';
import { unknownOperation } from './protocol.ts';
import { requireTableName } from './request.ts';
import type { RequestBody, RequestInfo, RouterOperationHandler } from './request.ts';
import { batchOperations } from './batch.ts';
import { itemOperations } from './items.ts';
import { accountOperations } from './limits.ts';
import { queryOperations } from './query.ts';
import { scanOperations } from './scan.ts';
import { tableOperations } from './tables.ts';
import { tagOperations } from './tags.ts';
import { transactionOperations } from './transactions.ts';
import { ttlOperations } from './ttl.ts';

/** Every DynamoDB operation Shoal serves, by name. */
const operations: Record<string, RouterOperationHandler> = {
  ...tableOperations,
  ...ttlOperations,
  ...tagOperations,
  ...accountOperations,
  ...itemOperations,
  ...queryOperations,
  ...scanOperations,
  ...batchOperations,
  ...transactionOperations,
};

export function createEngineContext(
  catalog: TableCatalog,
  partitions: PartitionClient,
  now: () => number,
): EngineContext {
  return {
    catalog,
    partitions,
    now,
    async requireTable(name: unknown): Promise<TableRecord> {
      const tableName = requireTableName({ TableName: name });
      const record = await catalog.get(tableName);
      if (record === undefined || (record.status !== 'ACTIVE' && record.status !== 'UPDATING')) {
        throw resourceNotFound();
      }
      return record;
    },
  };
}

export function isKnownOperation(operation: string): boolean {
  return Object.hasOwn(operations, operation);
}

/**
 * Runs one operation. Client mistakes come back as DynamoDbError; anything else is a bug, logged and
 * answered as DynamoDB's InternalServerError.
 */
export async function dispatch(
  operation: string,
  body: RequestBody,
  ctx: EngineContext,
  request: RequestInfo,
): Promise<{ ok: true; result: unknown } | { ok: false; error: DynamoDbError }> {
  const handler = getOwn(operations, operation);
  if (handler === undefined) return { ok: false, error: unknownOperation(operation) };
  try {
    return { ok: true, result: await handler(body, ctx, request) };
  } catch (error) {
    if (error instanceof DynamoDbError) return { ok: false, error };
    console.error(`shoal router: internal error in ${operation}:`, error);
    return { ok: false, error: internalError() };
  }
}
