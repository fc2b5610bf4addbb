/**
 * The replicated partition state machine: one Raft group's replica of a partition, applying
 * PartitionWrite commands to this node's PartitionStore.
 *
 * Commands are the JSON of the PartitionWrite. The model's partition contract is plain data made to
 * enter a Raft log unchanged (AttributeValues are JSON-native: numbers travel as strings, binaries
 * as base64), the store already keeps items as JSON, and every replica decodes the same bytes to the
 * same request. Conditions are evaluated by the store at apply time, so every replica decides alike.
 *
 * Each command's applied index is written in the same batch as its changes (even when a condition
 * fails and nothing else changes), so a replica restarted from disk skips exactly the entries its
 * data already holds. Those batches are not synced: the Raft log, which is, replays what was lost.
 *
 * Snapshots: the store is shared by every group on the node and read asynchronously, while the host
 * asks for snapshots synchronously, so this first version does not take them. Only the empty state
 * (nothing applied: a group's bootstrap) has a snapshot; anything else is refused with a clear error,
 * so a host running PartitionReplicas must keep log compaction (`snapshotPolicy`) off.
 */
import type { PartitionWrite, PartitionWriteResult } from '@shoal/model';
import type { PartitionStore } from '@shoal/storage';
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

export class PartitionCommandError extends Error {
  constructor(groupId: number, index: number, reason: string) {
    super(`Partition replica of group ${groupId}: entry ${index} is not a partition write (${reason})`);
    this.name = 'PartitionCommandError';
  }
}

export function encodePartitionWrite(write: PartitionWrite): Uint8Array {
  return encoder.encode(JSON.stringify(write));
}

export class PartitionReplica implements ReplicaStateMachine {
  readonly groupId: number;
  /** The node's store; reads of this replica's applied state go to it. */
  readonly store: PartitionStore;
  #applied: number;

  private constructor(groupId: number, store: PartitionStore, applied: number) {
    this.groupId = groupId;
    this.store = store;
    this.#applied = applied;
  }

  /** The replica of `groupId` over `store`, resuming at the applied index recorded there. */
  static async open(groupId: number, store: PartitionStore): Promise<PartitionReplica> {
    return new PartitionReplica(groupId, store, await store.appliedIndex(groupId));
  }

  async apply(data: Uint8Array, index: number): Promise<PartitionWriteResult> {
    const result = await this.store.write(decodePartitionWrite(this.groupId, index, data), { groupId: this.groupId, index });
    this.#applied = index;
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

function decodePartitionWrite(groupId: number, index: number, data: Uint8Array): PartitionWrite {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new PartitionCommandError(groupId, index, (error as Error).message);
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { operations?: unknown }).operations)) {
    throw new PartitionCommandError(groupId, index, 'no operations');
  }
  return parsed as PartitionWrite;
}

/**
 * Proposes a write through `host` (the group's leader here) and resolves with its result once it is
 * applied on this replica: the result its PartitionReplica returned.
 */
export async function proposePartitionWrite(host: MultiRaftHost, groupId: number, write: PartitionWrite): Promise<PartitionWriteResult> {
  return (await host.propose(groupId, encodePartitionWrite(write))) as PartitionWriteResult;
}
