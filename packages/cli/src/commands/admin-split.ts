import type { MessageInitShape } from '@bufbuild/protobuf';
import type { PartitionDescriptor } from '@shoal/model';
import { AdminService, createClient, partitionDescriptorFromWire, type SplitRequestSchema } from '@shoal/proto';
import { callMetaLeader, shortKey } from './admin-status.ts';

/**
 * `shoal admin split <table> [--at <key>]`: splits a partition of the table (or of its GSI, named
 * `table/index`: a GSI's entries have partitions of their own) through its own Raft log
 * (AdminService.Split on the meta leader). `--at` is a partition key value as DynamoDB JSON
 * (`{"S":"user42"}`: the split lands at the start of its item collection) or an encoded key in hex;
 * without it the table's widest partition splits in the middle of its hash range.
 */

/** The split applies on the partition's leader before the answer: longer than a status call. */
const SPLIT_TIMEOUT_MS = 30_000;

export interface AdminSplitOptions {
  meta: string[];
  table: string;
  at?: string;
  json?: boolean;
}

export function splitRequest(table: string, at: string | undefined): MessageInitShape<typeof SplitRequestSchema> {
  if (at === undefined) return { table };
  const text = at.trim();
  if (text.startsWith('{')) return { table, hashValue: text };
  if (/^([0-9a-fA-F]{2})+$/.test(text)) return { table, splitKey: new Uint8Array(Buffer.from(text, 'hex')) };
  throw new Error(`--at ${at}: give a partition key value as DynamoDB JSON ({"S":"k"}, {"N":"1"}, {"B":"base64"}) or an encoded key in hex`);
}

const describe = (p: PartitionDescriptor): string => `partition ${p.id} ${shortKey(p.startKey, false)}..${shortKey(p.endKey, true)} epoch ${p.epoch}`;

export async function runAdminSplit(options: AdminSplitOptions): Promise<void> {
  const request = splitRequest(options.table, options.at);
  const response = await callMetaLeader(options.meta, async (address) => {
    const admin = createClient(AdminService, address);
    try {
      return await admin.split(request, { timeoutMs: SPLIT_TIMEOUT_MS });
    } finally {
      admin.close();
    }
  });
  const left = partitionDescriptorFromWire(response.left);
  const right = partitionDescriptorFromWire(response.right);
  if (options.json) {
    const json = (p: PartitionDescriptor) => ({ id: p.id, epoch: p.epoch, startKey: Buffer.from(p.startKey).toString('hex'), endKey: Buffer.from(p.endKey).toString('hex') });
    process.stdout.write(`${JSON.stringify({ table: options.table, left: json(left), right: json(right) })}\n`);
    return;
  }
  process.stdout.write(`split table ${options.table}: ${describe(left)} | ${describe(right)}\n`);
}
