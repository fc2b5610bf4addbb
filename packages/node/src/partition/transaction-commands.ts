/**
 * The partition commands of cross-partition transactions (two-phase commit; see
 * @shoal/storage transactions.ts): the coordinator partition's record (begin, decide) and each
 * participant's intents (prepare, resolve). Each is one entry of the partition's Raft log, applied by
 * every replica to its store alike; the outcome is decided by the command and the store alone.
 */
import type { PartitionDescriptor, PartitionWrite, PartitionWriteResult } from '@shoal/model';
import { partitionBound, type PartitionBound } from '@shoal/storage';
import type { AppliedMark, PartitionStore, ResolvedIntents, TransactionRecord, TransactionRef, TransactionState } from '@shoal/storage';
import type { MultiRaftHost } from '../host/index.ts';
import { encodePartitionCommand, WriteOutOfRangeError, type WriteOutOfRange } from './partition-replica.ts';

export type TransactionCommand =
  | { kind: 'prepareTransaction'; transaction: TransactionRef; write: PartitionWrite }
  /** `bound`: the partition's key range as its proposer saw it (hex): the store holds other partitions' intents too. */
  | { kind: 'resolveTransaction'; transactionId: string; commit: boolean; bound: { start: string; end: string } }
  | { kind: 'beginTransaction'; record: TransactionRecord }
  | { kind: 'decideTransaction'; transactionId: string; decision: 'COMMITTED' | 'ABORTED' }
  | { kind: 'forgetTransaction'; transactionId: string };

const KINDS: ReadonlySet<string> = new Set(['prepareTransaction', 'resolveTransaction', 'beginTransaction', 'decideTransaction', 'forgetTransaction']);

export function isTransactionCommand(command: { kind: string }): command is TransactionCommand {
  return KINDS.has(command.kind);
}

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function fromHexBound(bound: { start: string; end: string }): PartitionBound {
  return partitionBound({ startKey: new Uint8Array(Buffer.from(bound.start, 'hex')), endKey: new Uint8Array(Buffer.from(bound.end, 'hex')) });
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The transaction command an entry's parsed JSON holds, undefined when its kind is not one; a
 * command of such a kind without the fields a replica relies on is refused with the reason.
 */
export function decodeTransactionCommand(parsed: Record<string, unknown>): TransactionCommand | { invalid: string } | undefined {
  if (typeof parsed.kind !== 'string' || !KINDS.has(parsed.kind)) return undefined;
  const transaction = parsed.kind === 'beginTransaction' ? parsed.record : parsed.transaction;
  switch (parsed.kind) {
    case 'prepareTransaction':
      if (!isObject(transaction) || typeof transaction.id !== 'string' || !isObject(parsed.write) || !Array.isArray(parsed.write.operations)) {
        return { invalid: 'a transaction prepare without its transaction and operations' };
      }
      break;
    case 'beginTransaction':
      if (!isObject(transaction) || typeof transaction.id !== 'string' || !Array.isArray(transaction.participants)) {
        return { invalid: 'a transaction begin without its record' };
      }
      break;
    case 'resolveTransaction':
      if (typeof parsed.transactionId !== 'string' || !isObject(parsed.bound) || typeof parsed.bound.start !== 'string' || typeof parsed.bound.end !== 'string') {
        return { invalid: 'a transaction resolve without its transaction id and bound' };
      }
      break;
    default:
      if (typeof parsed.transactionId !== 'string') return { invalid: `a ${parsed.kind} without its transaction id` };
  }
  return parsed as TransactionCommand;
}

/** What applying each command answers. */
export type TransactionCommandResult = PartitionWriteResult | ResolvedIntents | TransactionRecord | { state: TransactionState } | { forgotten: boolean };

export function applyTransactionCommand(store: PartitionStore, command: TransactionCommand, mark: AppliedMark): Promise<TransactionCommandResult> {
  switch (command.kind) {
    case 'prepareTransaction':
      return store.prepareTransaction(command.transaction, command.write, mark);
    case 'resolveTransaction':
      return store.resolveTransaction(command.transactionId, command.commit, fromHexBound(command.bound), mark);
    case 'beginTransaction':
      return store.beginTransaction(command.record, mark);
    case 'decideTransaction':
      return store.decideTransaction(command.transactionId, command.decision, mark).then((state) => ({ state }));
    case 'forgetTransaction':
      return store.forgetTransaction(command.transactionId, mark).then((forgotten) => ({ forgotten }));
  }
}

/** Proposers (through the group's leader here), each resolving with its command's result on this replica. */
export async function proposePrepareTransaction(host: MultiRaftHost, groupId: number, transaction: TransactionRef, write: PartitionWrite): Promise<PartitionWriteResult> {
  const result = (await host.propose(groupId, encodePartitionCommand({ kind: 'prepareTransaction', transaction, write }))) as PartitionWriteResult | WriteOutOfRange;
  // A split applied before the prepare cut off one of its keys: nothing was prepared, the router follows the new range.
  if ('status' in result) throw new WriteOutOfRangeError(groupId);
  return result;
}

export async function proposeResolveTransaction(host: MultiRaftHost, partition: PartitionDescriptor, transactionId: string, commit: boolean): Promise<ResolvedIntents> {
  const bound = { start: toHex(partition.startKey), end: toHex(partition.endKey) };
  return (await host.propose(partition.id, encodePartitionCommand({ kind: 'resolveTransaction', transactionId, commit, bound }))) as ResolvedIntents;
}

export async function proposeBeginTransaction(host: MultiRaftHost, groupId: number, record: TransactionRecord): Promise<TransactionRecord> {
  return (await host.propose(groupId, encodePartitionCommand({ kind: 'beginTransaction', record }))) as TransactionRecord;
}

export async function proposeForgetTransaction(host: MultiRaftHost, groupId: number, transactionId: string): Promise<boolean> {
  return ((await host.propose(groupId, encodePartitionCommand({ kind: 'forgetTransaction', transactionId }))) as { forgotten: boolean }).forgotten;
}

export async function proposeDecideTransaction(host: MultiRaftHost, groupId: number, transactionId: string, decision: 'COMMITTED' | 'ABORTED'): Promise<TransactionState> {
  return ((await host.propose(groupId, encodePartitionCommand({ kind: 'decideTransaction', transactionId, decision }))) as { state: TransactionState }).state;
}
