import { itemSize, writeCapacityUnits } from './item-size.ts';
import type { PartitionWrite, PartitionWriteResult } from './partition.ts';

/**
 * The least a read or write can cost (an eventually consistent read of a small item: half a unit):
 * what admission control takes from a token bucket when it lets a request in, before its real cost
 * is known.
 */
export const LEAST_CAPACITY_UNITS: Readonly<Record<'read' | 'write', number>> = { read: 0.5, write: 1 };

/**
 * Write units a served write cost each table it touched, for admission control (the partitions' and
 * the routers' token buckets): the larger of the old and new item of each operation when the images
 * came back, else the new item of a Put, at least one unit. Index entries are left out; the router's
 * ConsumedCapacity counts them exactly from the images.
 */
export function servedWriteUnits(write: PartitionWrite, result: PartitionWriteResult): Map<string, { units: number; bytes: number }> {
  const byTable = new Map<string, { units: number; bytes: number }>();
  write.operations.forEach((operation, i) => {
    const outcome = result.outcomes[i];
    const oldSize = outcome?.status === 'ok' && outcome.oldItem !== undefined ? itemSize(outcome.oldItem) : 0;
    const newItem = outcome?.status === 'ok' ? (outcome.newItem ?? operation.item) : operation.item;
    const size = Math.max(oldSize, newItem === undefined ? 0 : itemSize(newItem));
    const sum = byTable.get(operation.table.name) ?? { units: 0, bytes: 0 };
    sum.units += writeCapacityUnits(size);
    sum.bytes += size;
    byTable.set(operation.table.name, sum);
  });
  return byTable;
}
