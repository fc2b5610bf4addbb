import { getOwn, resourceNotFound, setOwn, validationError } from '@shoal/model';
import type { Item, PartitionClient, TableCatalog, TableSchema } from '@shoal/model';
import { Constraints, optionalBoolean, optionalString, optionalStruct } from './request.ts';
import type { RouterOperationHandler } from './request.ts';

/** Time to live: UpdateTimeToLive, DescribeTimeToLive, and the sweeper that deletes expired items. */

const updateTimeToLive: RouterOperationHandler = async (body, ctx, request) => {
  const constraints = new Constraints();
  const tableName = optionalString(body, 'TableName');
  constraints.tableName('tableName', tableName);
  const specification = optionalStruct(body, 'TimeToLiveSpecification');
  let enabled: boolean | undefined;
  let attributeName: string | undefined;
  if (constraints.notNull('timeToLiveSpecification', specification)) {
    enabled = optionalBoolean(specification!, 'Enabled');
    attributeName = optionalString(specification!, 'AttributeName');
    constraints.notNull('timeToLiveSpecification.enabled', enabled);
    if (constraints.notNull('timeToLiveSpecification.attributeName', attributeName)) {
      constraints.length('timeToLiveSpecification.attributeName', attributeName, 1, 255);
    }
  }
  constraints.throwIfAny();
  await request.tableLock(() =>
    ctx.catalog.update(tableName!, (record) => {
      const current = record.ttl;
      if (current?.enabled && current.attributeName !== attributeName) {
        throw validationError(`TimeToLive is active on a different AttributeName: current AttributeName is ${current.attributeName}`);
      }
      if (enabled && current?.enabled) throw validationError('TimeToLive is already enabled');
      if (!enabled && !current?.enabled) throw validationError('TimeToLive is already disabled');
      return { ...record, ttl: { attributeName: attributeName!, enabled: enabled! } };
    }),
  );
  return { TimeToLiveSpecification: { Enabled: enabled, AttributeName: attributeName } };
};

const describeTimeToLive: RouterOperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const tableName = optionalString(body, 'TableName');
  constraints.tableName('tableName', tableName);
  constraints.throwIfAny();
  const record = await ctx.catalog.get(tableName!);
  if (record === undefined) throw resourceNotFound(`Requested resource not found: Table: ${tableName} not found`);
  return {
    TimeToLiveDescription: record.ttl?.enabled
      ? { TimeToLiveStatus: 'ENABLED', AttributeName: record.ttl.attributeName }
      : { TimeToLiveStatus: 'DISABLED' },
  };
};

export const ttlOperations: Record<string, RouterOperationHandler> = {
  UpdateTimeToLive: updateTimeToLive,
  DescribeTimeToLive: describeTimeToLive,
};

// ---------------------------------------------------------------------------------------------
// The sweeper.

/** DynamoDB ignores expiry times more than five years in the past (they are likely not epoch seconds). */
const MAX_EXPIRY_AGE_SECONDS = 5 * 365 * 24 * 60 * 60;
const ITEMS_PER_PAGE = 100;
const BYTES_PER_PAGE = 1024 * 1024;
/**
 * Pages read per table per sweep: a sweep's work is bounded; the next sweep resumes where it stopped.
 * Past the first PAGES_PER_SWEEP, a sweep goes on while the pages hold expired items (up to
 * MAX_PAGES_PER_SWEEP): a table that expires items faster than 10 pages a sweep (sessions, idempotency
 * keys, the ClientRequestToken claims) would otherwise grow without bound.
 */
const PAGES_PER_SWEEP = 10;
const MAX_PAGES_PER_SWEEP = 100;

export interface TtlSweeper {
  /** One pass over every table with TTL enabled; resolves to the number of items deleted. */
  sweepOnce(): Promise<number>;
  /** Stops the timer and waits for a running sweep. */
  stop(): Promise<void>;
}

/** The expiry of an item under a TTL attribute, in epoch seconds, when the item has one. */
function expiryOf(item: Item, attributeName: string): { seconds: number; text: string } | undefined {
  const value = getOwn(item, attributeName);
  if (value === undefined || !('N' in value)) return undefined;
  const seconds = Number(value.N);
  return Number.isFinite(seconds) ? { seconds, text: value.N } : undefined;
}

function keyOf(item: Item, schema: TableSchema): Item {
  const key: Item = { [schema.hashKey.name]: item[schema.hashKey.name] };
  if (schema.rangeKey !== undefined) setOwn(key, schema.rangeKey.name, item[schema.rangeKey.name]);
  return key;
}

export function startTtlSweeper(options: {
  catalog: TableCatalog;
  partitions: PartitionClient;
  now: () => number;
  /** Pause between sweeps; 0 or less: no timer (sweeps run only through `sweepOnce`). */
  intervalMs: number;
}): TtlSweeper {
  const { catalog, partitions, now } = options;
  /** Where the last sweep of each table stopped, by table key space id. */
  const cursors = new Map<number, Item>();
  let running: Promise<number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function sweepTable(schema: TableSchema, attributeName: string): Promise<number> {
    let deleted = 0;
    let expiredInPage = false;
    for (let page = 0; page < MAX_PAGES_PER_SWEEP && (page < PAGES_PER_SWEEP || expiredInPage); page++) {
      const result = await partitions.readRange(
        {
          table: schema,
          forward: true,
          exclusiveStartKey: cursors.get(schema.tableId),
          limit: ITEMS_PER_PAGE,
          maxBytes: BYTES_PER_PAGE,
          select: 'ALL_ATTRIBUTES',
        },
        { consistent: false },
      );
      const nowSeconds = now() / 1000;
      const deletes: Array<Promise<boolean>> = [];
      for (const item of result.items) {
        const expiry = expiryOf(item, attributeName);
        if (expiry === undefined || expiry.seconds >= nowSeconds || expiry.seconds < nowSeconds - MAX_EXPIRY_AGE_SECONDS) continue;
        // Only if the item still holds this expired value: a concurrent update that extends the TTL wins.
        // A page's deletes go together (on the cluster, coalesced into few calls per partition).
        deletes.push(
          partitions
            .write({
              operations: [
                {
                  table: schema,
                  kind: 'Delete',
                  key: keyOf(item, schema),
                  expressions: { condition: '#ttl = :expiry', names: { '#ttl': attributeName }, values: { ':expiry': { N: expiry.text } } },
                },
              ],
            })
            .then((outcome) => outcome.applied),
        );
      }
      expiredInPage = deletes.length > 0;
      for (const applied of await Promise.all(deletes)) if (applied) deleted++;
      if (result.lastEvaluatedKey === undefined) {
        cursors.delete(schema.tableId);
        break;
      }
      cursors.set(schema.tableId, result.lastEvaluatedKey);
    }
    return deleted;
  }

  async function sweep(): Promise<number> {
    let deleted = 0;
    const swept = new Set<number>();
    for (const record of await catalog.list()) {
      if (!record.ttl?.enabled || (record.status !== 'ACTIVE' && record.status !== 'UPDATING')) continue;
      swept.add(record.schema.tableId);
      try {
        deleted += await sweepTable(record.schema, record.ttl.attributeName);
      } catch (error) {
        // One table's trouble (say, deleted mid-sweep) must not keep the others from being swept.
        console.error(`shoal router: TTL sweep of table ${record.schema.name} failed:`, error);
        cursors.delete(record.schema.tableId);
      }
    }
    // Forget where we were in tables deleted or no longer under TTL.
    for (const tableId of cursors.keys()) if (!swept.has(tableId)) cursors.delete(tableId);
    return deleted;
  }

  function sweepOnce(): Promise<number> {
    // Sweeps never overlap: a caller arriving during one waits for it and then runs its own.
    const previous = running ?? Promise.resolve(0);
    const next = previous.catch(() => 0).then(sweep);
    running = next;
    void next.finally(() => {
      if (running === next) running = undefined;
    }).catch(() => undefined);
    return next;
  }

  function schedule(): void {
    if (stopped || options.intervalMs <= 0) return;
    timer = setTimeout(() => {
      sweepOnce()
        .catch((error: unknown) => console.error('shoal router: TTL sweep failed:', error))
        .finally(schedule);
    }, options.intervalMs);
    timer.unref();
  }
  schedule();

  return {
    sweepOnce,
    async stop(): Promise<void> {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running?.catch(() => 0);
    },
  };
}
