/**
 * What a partition replica's snapshot carries besides the store's part (@shoal/storage
 * partition-snapshot.ts): the replica's key range and the splits its group applied, both replicated
 * state kept beside the store (PartitionReplicaSet), and the table schema the sender knew, so the
 * receiver finds every index space of the partition even when its own map view lags.
 *
 * Raft itself keeps only a descriptor (PARTITION_SNAPSHOT_DESCRIPTOR): the partition's state lives in
 * the node's store, and the payload below is read from it when a snapshot is sent (the host streams
 * it after the descriptor, chunk by chunk as the store's snapshot is read; the receiver's transport
 * stages it in a file, which the store restores from). Wire form:
 * `u32 header length | header JSON | store snapshot bytes`.
 */
import { open } from 'node:fs/promises';
import type { TableSchema } from '@shoal/model';
import { partitionBound, PartitionSnapshotFormatError, type PartitionBound, type StagedPartitionSnapshot } from '@shoal/storage';
import type { AppliedSplit } from './partition-replica.ts';

/** The data Raft records for every partition snapshot: the state is the store's. */
export const PARTITION_SNAPSHOT_DESCRIPTOR = new TextEncoder().encode(JSON.stringify({ partitionSnapshot: 'store' }));

/** Whether `data` is a partition snapshot's descriptor (a bootstrap snapshot written before payloads existed is one too). */
export function isPartitionSnapshotDescriptor(data: Uint8Array): boolean {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(data)) as { partitionSnapshot?: unknown };
    return parsed.partitionSnapshot === 'store' || parsed.partitionSnapshot === 'empty';
  } catch {
    return false;
  }
}

/** The replicated state of a replica kept beside the store. */
export interface PartitionSnapshotHeader {
  bound: PartitionBound;
  splits: AppliedSplit[];
  table: TableSchema;
}

interface HeaderJson {
  bound: { start: string; end: string };
  splits: Array<{ index: number; splitKey: string }>;
  table: TableSchema;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

/** The payload's beginning, which the store's snapshot bytes follow. */
export function encodePartitionPayloadHeader(header: PartitionSnapshotHeader): Uint8Array {
  const json: HeaderJson = {
    bound: { start: hex(header.bound.start), end: hex(header.bound.end) },
    splits: header.splits.map((s) => ({ index: s.index, splitKey: hex(s.splitKey) })),
    table: header.table,
  };
  const text = Buffer.from(JSON.stringify(json));
  const prefix = new Uint8Array(4 + text.length);
  new DataView(prefix.buffer).setUint32(0, text.length, false);
  prefix.set(text, 4);
  return prefix;
}

/**
 * The header of a payload staged in a file (the host's StagedPayload), and where the store's snapshot
 * after it lies.
 */
export async function readPartitionPayloadHeader(payload: StagedPartitionSnapshot): Promise<{ header: PartitionSnapshotHeader; store: StagedPartitionSnapshot }> {
  const file = await open(payload.path, 'r');
  let json: HeaderJson;
  let length: number;
  try {
    const read = async (at: number, size: number, what: string): Promise<Buffer> => {
      if (at + size > payload.size) throw new PartitionSnapshotFormatError(`${what} running past the payload`);
      const bytes = Buffer.alloc(size);
      const { bytesRead } = await file.read(bytes, 0, size, payload.offset + at);
      if (bytesRead !== size) throw new PartitionSnapshotFormatError(`${what} running past the file`);
      return bytes;
    };
    length = (await read(0, 4, 'a header length')).readUInt32BE(0);
    const text = (await read(4, length, 'a header')).toString('utf8');
    try {
      json = JSON.parse(text) as HeaderJson;
    } catch (error) {
      throw new PartitionSnapshotFormatError(`a header that is not JSON (${(error as Error).message})`);
    }
  } finally {
    await file.close();
  }
  if (typeof json.bound?.start !== 'string' || typeof json.bound.end !== 'string' || !Array.isArray(json.splits) || typeof json.table?.tableId !== 'number') {
    throw new PartitionSnapshotFormatError('a header without its bound, splits and table');
  }
  return {
    header: {
      bound: partitionBound({ startKey: fromHex(json.bound.start), endKey: fromHex(json.bound.end) }),
      splits: json.splits.map((s) => ({ index: s.index, splitKey: fromHex(s.splitKey) })),
      table: json.table,
    },
    store: { path: payload.path, offset: payload.offset + 4 + length, size: payload.size - 4 - length },
  };
}
