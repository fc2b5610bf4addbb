import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttributeValue, IndexSchema, Item, KeyAttribute, PartitionClient, RangeReadRequest, TableSchema } from '@shoal/model';
import { openLocalStore, type AppliedMark, type LocalStore, type OutboxMoveLimits, type OutboxMoveStep, type PartitionStore } from '../src/index.ts';

export const S = (value: string): AttributeValue => ({ S: value });
export const N = (value: number | string): AttributeValue => ({ N: String(value) });
export const B = (bytes: number[]): AttributeValue => ({ B: Buffer.from(bytes).toString('base64') });

export function key(name: string, type: KeyAttribute['type']): KeyAttribute {
  return { name, type };
}

export function table(tableId: number, hashKey: KeyAttribute, rangeKey?: KeyAttribute, indexes: IndexSchema[] = []): TableSchema {
  return { name: `t${tableId}`, tableId, hashKey, ...(rangeKey ? { rangeKey } : {}), indexes };
}

export async function temporaryDirectory(): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'shoal-storage-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export function memoryStore(): Promise<LocalStore> {
  return openLocalStore({ inMemory: true });
}

export async function put(partitions: PartitionClient, schema: TableSchema, item: Item): Promise<void> {
  const keyAttributes = schema.rangeKey ? [schema.hashKey, schema.rangeKey] : [schema.hashKey];
  const itemKey = Object.fromEntries(keyAttributes.map((attribute) => [attribute.name, item[attribute.name]]));
  const result = await partitions.write({ operations: [{ table: schema, kind: 'Put', key: itemKey, item }] });
  if (!result.applied) throw new Error(`put failed: ${JSON.stringify(result.outcomes)}`);
}

/** Reads every page of a Query or Scan, following LastEvaluatedKey; returns the pages. */
export async function readAllPages(
  partitions: PartitionClient,
  request: RangeReadRequest,
  maxPages = 10_000,
): Promise<Array<{ items: Item[]; lastEvaluatedKey?: Item; scannedCount: number; count: number; bytesRead: number }>> {
  const pages = [];
  let exclusiveStartKey: Item | undefined;
  for (let page = 0; page < maxPages; page++) {
    const result = await partitions.readRange({ ...request, ...(exclusiveStartKey ? { exclusiveStartKey } : {}) }, { consistent: true });
    pages.push(result);
    if (!result.lastEvaluatedKey) return pages;
    exclusiveStartKey = result.lastEvaluatedKey;
  }
  throw new Error('too many pages');
}

export function baseRequest(schema: TableSchema, extra: Partial<RangeReadRequest> = {}): RangeReadRequest {
  return { table: schema, forward: true, maxBytes: 1024 * 1024, select: 'ALL_ATTRIBUTES', ...extra };
}

/** A small deterministic generator (mulberry32), so a failure replays exactly. */
export { seededRandom as random } from '@shoal/linearizability';

/** A group's log as a test drives it: its id and the mark of its next entry. */
export interface LogOfGroup {
  readonly groupId: number;
  mark(): AppliedMark;
}

/** Applies move steps of the group's outbox move (after a split), as its leader would propose them, until it ended; answers their outcomes. */
export async function runOutboxMove(store: PartitionStore, group: LogOfGroup, limits?: OutboxMoveLimits): Promise<OutboxMoveStep[]> {
  const steps: OutboxMoveStep[] = [];
  for (let step = await store.nextIndexOutboxMoveStep(group.groupId, limits); step !== undefined; step = await store.nextIndexOutboxMoveStep(group.groupId, limits)) {
    steps.push(await store.applyIndexOutboxMove(group.groupId, step.fromSeq, step.toSeq, group.mark()));
    if (steps.length > 10_000) throw new Error('an outbox move that never ends');
  }
  return steps;
}
