/**
 * Splits driven from the meta leader (`shoal admin split`, contracts: the split is a command of the
 * partition's own Raft log). In order:
 *   1. a partition id is reserved in the meta log (reservePartitionId), so ids never collide;
 *   2. the partition's leader is asked to split (PartitionService.SplitPartition), following NotLeader
 *      hints over the partition's replicas, with bounded attempts;
 *   3. the split is recorded in the map (splitPartition with the reserved id and the end the group
 *      split): both halves at the parent's epoch + 1.
 * A meta leader that dies between 2 and 3 leaves the map behind the group: the nodes report the
 * halves' descriptors in their heartbeats and the placement driver records the split then
 * (`unrecordedSplits`).
 */
import { compareBytes, rangesOverlap, type PartitionDescriptor } from '@shoal/model';
import type { MetaCommand, MetaState } from '@shoal/meta';
import { ErrorDetailSchema, PartitionService, RpcError, Status, createClient, partitionDescriptorFromWire, type ClientOf, type PartitionLoad } from '@shoal/proto';
import type { NodeId } from '@shoal/raft';
import type { MetaGroup } from './meta-group.ts';

export interface PartitionSplitterOptions {
  /** A node's gRPC address. */
  nodeAddress(nodeId: NodeId): string | undefined;
  /** Calls before giving up (default 20). */
  attempts?: number;
  /** Per call (default 10,000 ms: the split applies on the leader before it answers). */
  callTimeoutMs?: number;
  /** Between calls after a failure (default 250 ms). */
  retryDelayMs?: number;
}

export interface SplitHalves {
  left: PartitionDescriptor;
  right: PartitionDescriptor;
}

/** Asks a partition's leader to split it. */
export class PartitionSplitter {
  readonly #options: PartitionSplitterOptions;

  constructor(options: PartitionSplitterOptions) {
    this.#options = options;
  }

  async split(parent: PartitionDescriptor, splitKey: Uint8Array, rightId: number): Promise<SplitHalves> {
    const voters = parent.replicas.filter((r) => r.role === 'voter').map((r) => r.nodeId);
    const order = parent.leaderHint !== undefined && voters.includes(parent.leaderHint) ? [parent.leaderHint, ...voters.filter((n) => n !== parent.leaderHint)] : voters;
    const attempts = this.#options.attempts ?? 20;
    let next = 0;
    let hinted: NodeId | undefined;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const nodeId = hinted ?? order[next++ % order.length];
      hinted = undefined;
      const address = this.#options.nodeAddress(nodeId);
      if (address === undefined) continue;
      const client: ClientOf<typeof PartitionService> = createClient(PartitionService, address);
      try {
        const response = await client.splitPartition(
          { target: { partitionId: BigInt(parent.id), epoch: BigInt(parent.epoch) }, splitKey, rightPartitionId: BigInt(rightId) },
          { timeoutMs: this.#options.callTimeoutMs ?? 10_000 },
        );
        if (response.left === undefined || response.right === undefined) throw new RpcError(Status.INTERNAL, 'split answered without its halves');
        return { left: partitionDescriptorFromWire(response.left), right: partitionDescriptorFromWire(response.right) };
      } catch (error) {
        if (!(error instanceof RpcError)) throw error;
        lastError = error;
        const detail = error.detail(ErrorDetailSchema)?.kind;
        if (detail?.case === 'notLeader') {
          const leader = Number(detail.value.leader?.id ?? 0n);
          if (leader !== 0 && leader !== nodeId) {
            hinted = leader;
            continue;
          }
        } else if (!(error.code === Status.UNAVAILABLE || error.code === Status.NOT_FOUND || error.code === Status.DEADLINE_EXCEEDED)) {
          // Refused for good (a bad key, a stale epoch, a split in between): the caller decides.
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, this.#options.retryDelayMs ?? 250));
      } finally {
        client.close();
      }
    }
    throw lastError instanceof RpcError ? lastError : new RpcError(Status.UNAVAILABLE, `partition ${parent.id}: no leader could be reached to split it`);
  }
}

/**
 * A split from start to end, as the meta leader makes it (AdminService.Split, the placement driver's
 * splits for size and heat): an id reserved (told to `onReserved`: a split that fails after that may
 * still have applied, and is then recorded from the nodes' reports under that id), the split asked of
 * the partition's leader, the halves recorded in the map. The halves as the map now has them.
 */
export async function splitAndRecord(
  group: MetaGroup,
  splitter: PartitionSplitter,
  parent: PartitionDescriptor,
  splitKey: Uint8Array,
  onReserved?: (rightId: number) => void,
): Promise<SplitHalves> {
  const reserved = await group.propose({ type: 'reservePartitionId' });
  onReserved?.(reserved.partitionId!);
  const halves = await splitter.split(parent, splitKey, reserved.partitionId!);
  await group.propose(recordSplitCommand(halves.left, halves.right));
  const state = group.meta.state;
  return { left: state.partitions[halves.left.id], right: state.partitions[halves.right.id] };
}

/** The meta command recording a split the partition's group applied (left: the parent, right: the new half). */
export type SplitRecord = Extract<MetaCommand, { type: 'splitPartition' }>;

export function recordSplitCommand(left: PartitionDescriptor, right: PartitionDescriptor): SplitRecord {
  return { type: 'splitPartition', partitionId: left.id, splitKey: right.startKey, rightId: right.id, parentEnd: right.endKey };
}

/**
 * Splits the nodes applied that the map does not show (its meta leader died before recording them):
 * a reported descriptor of a partition the map lacks, whose id was reserved, whose table's partition
 * over its start is older and ends where it ends (a parent split twice is recorded right half by
 * right half, the outermost first).
 */
export function unrecordedSplits(state: MetaState, loads: readonly PartitionLoad[]): SplitRecord[] {
  const commands = new Map<number, SplitRecord>();
  for (const load of loads) {
    if (load.descriptor === undefined) continue;
    const reported = partitionDescriptorFromWire(load.descriptor);
    if (state.partitions[reported.id] !== undefined || reported.id >= state.nextPartitionId || commands.has(reported.id)) continue;
    const parent = Object.values(state.partitions).find(
      (p) => p.tableId === reported.tableId && rangesOverlap(p.startKey, p.endKey, reported.startKey, reported.endKey),
    );
    if (parent === undefined || parent.epoch >= reported.epoch || compareBytes(parent.endKey, reported.endKey) !== 0) continue;
    if (compareBytes(parent.startKey, reported.startKey) >= 0) continue;
    commands.set(reported.id, recordSplitCommand(parent, reported));
  }
  return [...commands.values()];
}
