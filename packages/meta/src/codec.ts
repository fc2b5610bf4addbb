/**
 * The meta group's bytes: commands (Raft log entries) and state snapshots (log compaction, new
 * members). Canonical JSON, keys sorted at every level and byte strings as hex, so equal values give
 * byte-identical encodings.
 */
import type { PartitionDescriptor } from '@shoal/model';
import type { MetaCommand, MetaCommandType, MetaState } from './state.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function canonical(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

interface PartitionJson {
  id: number;
  tableId: number;
  startKey: string;
  endKey: string;
  epoch: number;
  replicas: { nodeId: number; role: 'voter' | 'learner' }[];
  leaderHint?: number;
}

function partitionToJson(p: PartitionDescriptor): PartitionJson {
  const out: PartitionJson = {
    id: p.id,
    tableId: p.tableId,
    startKey: Buffer.from(p.startKey).toString('hex'),
    endKey: Buffer.from(p.endKey).toString('hex'),
    epoch: p.epoch,
    replicas: p.replicas.map((r) => ({ nodeId: r.nodeId, role: r.role })),
  };
  if (p.leaderHint !== undefined) out.leaderHint = p.leaderHint;
  return out;
}

function partitionFromJson(p: PartitionJson): PartitionDescriptor {
  const out: PartitionDescriptor = {
    id: p.id,
    tableId: p.tableId,
    startKey: new Uint8Array(Buffer.from(p.startKey, 'hex')),
    endKey: new Uint8Array(Buffer.from(p.endKey, 'hex')),
    epoch: p.epoch,
    replicas: p.replicas.map((r) => ({ nodeId: r.nodeId, role: r.role })),
  };
  if (p.leaderHint !== undefined) out.leaderHint = p.leaderHint;
  return out;
}

const SNAPSHOT_FORMAT = 1;

export function encodeMetaSnapshot(state: MetaState): Uint8Array {
  const partitions = Object.values(state.partitions)
    .sort((a, b) => a.id - b.id)
    .map(partitionToJson);
  const document = {
    format: SNAPSHOT_FORMAT,
    state: { ...state, partitions },
  };
  // Table records and node records are plain JSON already (TableRecord is what TableRecordJson carries).
  return new TextEncoder().encode(canonical(JSON.parse(JSON.stringify(document)) as Json));
}

export function decodeMetaSnapshot(bytes: Uint8Array): MetaState {
  const document = JSON.parse(new TextDecoder().decode(bytes)) as { format: number; state: Omit<MetaState, 'partitions'> & { partitions: PartitionJson[] } };
  if (document.format !== SNAPSHOT_FORMAT) throw new RangeError(`unknown meta snapshot format ${document.format}`);
  const { partitions, ...rest } = document.state;
  return { ...rest, partitions: Object.fromEntries(partitions.map((p) => [p.id, partitionFromJson(p)])) };
}

const COMMAND_TYPES: ReadonlySet<MetaCommandType> = new Set<MetaCommandType>([
  'registerNode',
  'heartbeat',
  'markNodeDown',
  'markNodeDraining',
  'undrainNode',
  'createTable',
  'updateTable',
  'deleteTable',
  'allocateSpaceId',
  'splitPartition',
  'reservePartitionId',
  'setReplicas',
  'setLeaderHint',
]);

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

export function encodeMetaCommand(command: MetaCommand): Uint8Array {
  const json =
    command.type === 'splitPartition'
      ? { ...command, splitKey: toHex(command.splitKey), ...(command.parentEnd === undefined ? {} : { parentEnd: toHex(command.parentEnd) }) }
      : command;
  return new TextEncoder().encode(canonical(JSON.parse(JSON.stringify(json)) as Json));
}

export function decodeMetaCommand(bytes: Uint8Array): MetaCommand {
  const json = JSON.parse(new TextDecoder().decode(bytes)) as { type: MetaCommandType; splitKey?: string; parentEnd?: string };
  if (!COMMAND_TYPES.has(json.type)) throw new RangeError(`unknown meta command ${String(json.type)}`);
  // Written by encodeMetaCommand (the meta leader's own log): only the split's keys need converting.
  if (json.type === 'splitPartition') {
    const { parentEnd, ...rest } = json;
    return { ...rest, splitKey: fromHex(json.splitKey ?? ''), ...(parentEnd === undefined ? {} : { parentEnd: fromHex(parentEnd) }) } as MetaCommand;
  }
  return json as MetaCommand;
}
