/**
 * What every node reported in its last heartbeat to this meta leader: the replicas it hosts with
 * their Raft progress. Kept in the leader's memory only (a new leader hears them again within a
 * heartbeat interval): Status shows them, and the placement driver waits for a partition's Raft
 * group to match its descriptor before it changes the descriptor again.
 */
import type { ReplicaRole as ModelReplicaRole } from '@shoal/model';
import { ReplicaRole, type PartitionLoad } from '@shoal/proto';
import type { NodeId } from '@shoal/raft';

export interface NodeReport {
  /** When the heartbeat reached the leader (the meta clock). */
  at: number;
  loads: PartitionLoad[];
}

const ROLES = new Map<ReplicaRole, ModelReplicaRole>([
  [ReplicaRole.VOTER, 'voter'],
  [ReplicaRole.LEARNER, 'learner'],
]);

export class NodeReports {
  readonly #reports = new Map<NodeId, NodeReport>();
  /** By node, then partition: the role of the node's replica in the group's configuration. */
  readonly #roles = new Map<NodeId, Map<number, ModelReplicaRole>>();
  /** By partition: the node that reported leading it in the highest term heard of. */
  readonly #leaders = new Map<number, { nodeId: NodeId; term: bigint }>();

  record(nodeId: NodeId, at: number, loads: PartitionLoad[]): void {
    this.#reports.set(nodeId, { at, loads });
    const roles = new Map<number, ModelReplicaRole>();
    for (const load of loads) {
      const role = ROLES.get(load.role);
      if (load.partitionId > BigInt(Number.MAX_SAFE_INTEGER)) continue;
      const partitionId = Number(load.partitionId);
      if (role !== undefined) roles.set(partitionId, role);
      // A deposed leader may still claim the group until it hears of the new term: the higher term wins.
      const known = this.#leaders.get(partitionId);
      if (load.leader && (known === undefined || load.term >= known.term)) this.#leaders.set(partitionId, { nodeId, term: load.term });
    }
    this.#roles.set(nodeId, roles);
  }

  /** The node that reported leading the partition in the highest term heard of. */
  leaderOf(partitionId: number): NodeId | undefined {
    return this.#leaders.get(partitionId)?.nodeId;
  }

  get(nodeId: NodeId): NodeReport | undefined {
    return this.#reports.get(nodeId);
  }

  /** The role `nodeId` last reported for its replica of the partition; undefined when it reported none. */
  roleOf(nodeId: NodeId, partitionId: number): ModelReplicaRole | undefined {
    return this.#roles.get(nodeId)?.get(partitionId);
  }
}
