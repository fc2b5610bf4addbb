/**
 * The replicated partition state machine: one Raft group's replica of a partition, applying
 * partition commands to this node's PartitionStore, which holds every replica of the node: so index
 * commands apply within the partition's bound (its key range in the node's map view).
 *
 * A command is the JSON of a small envelope (PartitionCommand): a write (PartitionWrite), or the
 * backfill or drop of an index. The model's partition contract is plain data made to enter a Raft
 * log unchanged (AttributeValues are JSON-native: numbers travel as strings, binaries as base64),
 * the store already keeps items as JSON, and every replica decodes the same bytes to the same
 * request. Conditions are evaluated by the store at apply time, so every replica decides alike.
 *
 * A write's applied index is written in the same batch as its changes (even when a condition fails
 * and nothing else changes), an index command's once it is done: a replica restarted from disk skips
 * exactly the entries its data already holds, and runs an interrupted backfill again from the start.
 * Those batches are not synced: the Raft log, which is, replays what was lost. An index command runs
 * to its end within apply (the host applies entries in order), so a large partition's backfill holds
 * up the host's other groups meanwhile.
 *
 * Snapshots: the store is shared by every group on the node and read asynchronously, while the host
 * asks for snapshots synchronously, so this first version does not take them. Only the empty state
 * (nothing applied: a group's bootstrap) has a snapshot; anything else is refused with a clear error,
 * so a host running PartitionReplicas must keep log compaction (`snapshotPolicy`) off.
 */
import { DynamoDbError, validationError, type PartitionWrite, type PartitionWriteResult, type TableSchema } from '@shoal/model';
import type { PartitionBound, PartitionStore } from '@shoal/storage';
import type { MultiRaftHost, ReplicaStateMachine } from '../host/index.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The only state this version can snapshot: nothing applied yet. */
const EMPTY_SNAPSHOT = encoder.encode(JSON.stringify({ partitionSnapshot: 'empty' }));

export class PartitionSnapshotUnsupportedError extends Error {
  constructor(groupId: number, what: string) {
    super(`Partition replica of group ${groupId}: ${what}; snapshots of a non-empty partition are not supported yet, keep snapshotPolicy off`);
    this.name = 'PartitionSnapshotUnsupportedError';
  }
}

/** An entry of the partition log that is not a partition command: a corrupt log, never a client's input. */
export class PartitionCommandError extends Error {
  constructor(groupId: number, index: number, reason: string) {
    super(`Partition replica of group ${groupId}: entry ${index} is not a partition command (${reason})`);
    this.name = 'PartitionCommandError';
  }
}

/** What a partition's Raft log holds (contracts #9). Deleting a table needs no command: its replicas go. */
export type PartitionCommand =
  | { kind: 'write'; write: PartitionWrite }
  | { kind: 'backfillIndex'; table: TableSchema; indexName: string }
  | { kind: 'dropIndex'; table: TableSchema; indexName: string };

export type IndexCommand = Extract<PartitionCommand, { kind: 'backfillIndex' | 'dropIndex' }>;

/** An index command's outcome: `invalid` (an index its table does not have) changed nothing, on every replica alike. */
export type IndexCommandResult = { status: 'ok' } | { status: 'invalid'; message: string };

export function encodePartitionCommand(command: PartitionCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export interface PartitionReplicaOptions {
  /**
   * The partition's key range in the node's current map view, read at each index command; undefined
   * (or no function): the whole table, for a store holding no other partition of it.
   */
  boundOf?(): PartitionBound | undefined;
}

export class PartitionReplica implements ReplicaStateMachine {
  readonly groupId: number;
  /** The node's store; reads of this replica's applied state go to it. */
  readonly store: PartitionStore;
  readonly #boundOf: () => PartitionBound | undefined;
  #applied: number;

  private constructor(groupId: number, store: PartitionStore, applied: number, options: PartitionReplicaOptions) {
    this.groupId = groupId;
    this.store = store;
    this.#applied = applied;
    this.#boundOf = options.boundOf ?? (() => undefined);
  }

  /** The replica of `groupId` over `store`, resuming at the applied index recorded there. */
  static async open(groupId: number, store: PartitionStore, options: PartitionReplicaOptions = {}): Promise<PartitionReplica> {
    return new PartitionReplica(groupId, store, await store.appliedIndex(groupId), options);
  }

  /** The partition's bound now (undefined: unbounded). */
  bound(): PartitionBound | undefined {
    return this.#boundOf();
  }

  async apply(data: Uint8Array, index: number): Promise<PartitionWriteResult | IndexCommandResult> {
    const command = decodePartitionCommand(this.groupId, index, data);
    const mark = { groupId: this.groupId, index };
    const result = command.kind === 'write' ? await this.store.write(command.write, mark) : await this.#applyIndexCommand(command, mark);
    this.#applied = index;
    return result;
  }

  async #applyIndexCommand(command: IndexCommand, mark: { groupId: number; index: number }): Promise<IndexCommandResult> {
    const bound = this.#boundOf();
    let result: IndexCommandResult = { status: 'ok' };
    try {
      if (command.kind === 'backfillIndex') await this.store.backfillIndex(command.table, command.indexName, bound);
      else await this.store.dropIndex(command.table, command.indexName, bound);
    } catch (error) {
      // Decided by the command alone (the index is not in its table): the same no-op on every replica.
      if (!(error instanceof DynamoDbError && error.type === 'ValidationException')) throw error;
      result = { status: 'invalid', message: error.message };
    }
    await this.store.markApplied(mark);
    return result;
  }

  snapshot(): Uint8Array {
    if (this.#applied !== 0) throw new PartitionSnapshotUnsupportedError(this.groupId, `cannot snapshot at applied index ${this.#applied}`);
    return EMPTY_SNAPSHOT;
  }

  restore(data: Uint8Array): void {
    if (decoder.decode(data) !== decoder.decode(EMPTY_SNAPSHOT)) {
      throw new PartitionSnapshotUnsupportedError(this.groupId, 'cannot restore a snapshot of a non-empty partition');
    }
    if (this.#applied !== 0) throw new PartitionSnapshotUnsupportedError(this.groupId, `cannot empty a partition at applied index ${this.#applied}`);
  }

  appliedIndex(): number {
    return this.#applied;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The command an entry holds; its shape is checked as far as a replica relies on it, the rest is the store's to refuse. */
export function decodePartitionCommand(groupId: number, index: number, data: Uint8Array): PartitionCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new PartitionCommandError(groupId, index, (error as Error).message);
  }
  if (!isObject(parsed)) throw new PartitionCommandError(groupId, index, 'not an object');
  switch (parsed.kind) {
    case 'write':
      if (!isObject(parsed.write) || !Array.isArray(parsed.write.operations)) throw new PartitionCommandError(groupId, index, 'a write without operations');
      return parsed as PartitionCommand;
    case 'backfillIndex':
    case 'dropIndex': {
      const table = parsed.table;
      if (!isObject(table) || typeof table.tableId !== 'number' || !Array.isArray(table.indexes) || typeof parsed.indexName !== 'string') {
        throw new PartitionCommandError(groupId, index, `a ${parsed.kind} without its table and index name`);
      }
      return parsed as PartitionCommand;
    }
    default:
      throw new PartitionCommandError(groupId, index, `unknown command ${JSON.stringify(parsed.kind)}`);
  }
}

/**
 * Proposes a write through `host` (the group's leader here) and resolves with its result once it is
 * applied on this replica: the result its PartitionReplica returned.
 */
export async function proposePartitionWrite(host: MultiRaftHost, groupId: number, write: PartitionWrite): Promise<PartitionWriteResult> {
  return (await host.propose(groupId, encodePartitionCommand({ kind: 'write', write }))) as PartitionWriteResult;
}

/**
 * Proposes an index backfill or drop through `host` (the group's leader here); resolves once this
 * replica has run it over its partition, and fails with DynamoDB's ValidationException when the table
 * has no such index.
 */
export async function proposeIndexCommand(host: MultiRaftHost, groupId: number, command: IndexCommand): Promise<void> {
  const result = (await host.propose(groupId, encodePartitionCommand(command))) as IndexCommandResult;
  if (result.status === 'invalid') throw validationError(result.message);
}
