/**
 * Partitions an operator placed (AdminService.Move): the placement driver's rebalancing leaves them
 * where they were put, so that it does not undo the move at its next round; repairs and drains still
 * move them. A pin lasts while the partition keeps a replica on the node it was moved to. Kept in
 * the meta leader's memory only (like LeadershipTransfers): after a change of meta leader,
 * rebalancing may move those partitions again.
 */
import type { MetaState } from '@shoal/meta';
import type { NodeId } from '@shoal/raft';

export class PlacementPins {
  /** By partition: the node an operator moved a replica to. */
  readonly #pins = new Map<number, NodeId>();

  pin(partitionId: number, toNode: NodeId): void {
    this.#pins.set(partitionId, toNode);
  }

  /** The pinned partitions of `state`; pins of partitions gone, or moved off their node since, lapse. */
  pinned(state: MetaState): Set<number> {
    for (const [partitionId, nodeId] of this.#pins) {
      if (!state.partitions[partitionId]?.replicas.some((r) => r.nodeId === nodeId)) this.#pins.delete(partitionId);
    }
    return new Set(this.#pins.keys());
  }
}
