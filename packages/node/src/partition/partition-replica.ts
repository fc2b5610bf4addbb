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
 * and nothing else changes), so a replica restarted from disk skips exactly the entries its data
 * already holds. Those batches are not synced: the Raft log, which is, replays what was lost.
 *
 * An index command is applied by recording it as running (with its applied index) and starting it:
 * a backfill of a large partition runs for seconds, and the host, which applies every group's
 * entries in one loop, must not wait for it. The group's next writes are maintained meanwhile (the
 * store's backfill gate), its next index commands run in turn, and a replica restarted before one
 * finished runs it again from the start when it opens. Only GSIs are ever backfilled (an LSI comes
 * with its table), and a GSI answers eventually consistent reads only: a replica still building its
 * entries answers as one that has not applied the command yet would.
 *
 * Snapshots: the store is shared by every group on the node and read asynchronously, while the host
 * asks for snapshots synchronously, so this first version does not take them. Only the empty state
 * (nothing applied: a group's bootstrap) has a snapshot; anything else is refused with a clear error,
 * so a host running PartitionReplicas must keep log compaction (`snapshotPolicy`) off.
 */
import { DynamoDbError, validationError, type PartitionWrite, type PartitionWriteResult } from '@shoal/model';
import type { IndexCommand, PartitionBound, PartitionStore } from '@shoal/storage';
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
export type PartitionCommand = { kind: 'write'; write: PartitionWrite } | IndexCommand;

/**
 * An index command's outcome where it was applied: started (`done` once it ran here), or `invalid`
 * (an index its table does not have), which changed nothing, on every replica alike.
 */
export type IndexCommandResult = { status: 'started'; done: Promise<void> } | { status: 'invalid'; message: string };

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
  /** Index commands started here and still running. */
  readonly #running = new Set<Promise<void>>();
  #applied: number;

  private constructor(groupId: number, store: PartitionStore, applied: number, options: PartitionReplicaOptions) {
    this.groupId = groupId;
    this.store = store;
    this.#applied = applied;
    this.#boundOf = options.boundOf ?? (() => undefined);
  }

  /** The replica of `groupId` over `store`, resuming at the applied index recorded there. */
  static async open(groupId: number, store: PartitionStore, options: PartitionReplicaOptions = {}): Promise<PartitionReplica> {
    const replica = new PartitionReplica(groupId, store, await store.appliedIndex(groupId), options);
    for (const done of await store.resumeIndexCommands(groupId)) replica.#track(done);
    return replica;
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
    try {
      const { done } = await this.store.startIndexCommand(command, this.#boundOf(), mark);
      this.#track(done);
      return { status: 'started', done };
    } catch (error) {
      // Decided by the command alone (the index is not in its table): the same no-op on every replica.
      if (!(error instanceof DynamoDbError && error.type === 'ValidationException')) throw error;
      await this.store.markApplied(mark);
      return { status: 'invalid', message: error.message };
    }
  }

  /** Resolves once every index command started here so far has run (or failed). */
  async indexCommandsRun(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }

  /**
   * Keeps a run until it ends. Nobody else may wait for it (on a follower, or resumed at open): a
   * failed run is a failed store write, which stops the store's commit queue, and every later write
   * of the node reports that.
   */
  #track(run: Promise<void>): void {
    this.#running.add(run);
    run.then(
      () => this.#running.delete(run),
      () => this.#running.delete(run),
    );
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
  await result.done;
}

