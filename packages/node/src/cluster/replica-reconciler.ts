/**
 * Brings this node's partition replicas to the partition map (contracts #7). Descriptors are the
 * DESIRED state; each pass:
 *   - creates a replica of every partition listing this node: bootstrapped with the descriptor's
 *     voters for a new partition (epoch 1, every initial voter alike), else created empty, waiting
 *     for its leader to add it and send it the log;
 *   - removes replicas of partitions that no longer list this node, and deletes their data, once it
 *     is safe: the partition is gone, or this replica left the group's configuration (or never joined
 *     it); a leader hands leadership over first. A removed node does not always learn of its removal
 *     (the leader stops sending to it), so a replica unlisted for `removalGraceMs` goes anyway;
 *   - where this node leads a partition, converges the group's configuration to the descriptor one
 *     change at a time: a missing member joins as a learner, a learner is promoted once caught up,
 *     and only when every wanted voter votes does a member no longer listed leave.
 *
 * Splits: a partition's right half is created by its parent's replica when it applies the split (same
 * members, data already here), so a partition is never created over a range a replica here still
 * holds, and a right half the map does not list yet is kept (it is ahead of the map). A new member of
 * any partition, a split half included (its data before the split lies in its parent's log), is
 * caught up by a snapshot of the partition from its leader, then by the log.
 *
 * Passes never overlap; one requested during a pass runs after it. Failures are logged and retried
 * at the next pass.
 */
import type { PartitionDescriptor } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import type { GroupStatus, MembershipChange, MultiRaftHost } from '../host/index.ts';
import type { NodeLog } from './log.ts';

/** The node's partition state machines, which the host asks for synchronously. */
export interface PartitionReplicas {
  /** Readies the state machine of a replica about to be created here (before the host creates it). */
  open(partition: PartitionDescriptor): Promise<void>;
  /** Deletes the data of a replica the host removed. */
  drop(partitionId: number): Promise<void>;
  /** A split half the map does not list yet (its parent is still older there). */
  aheadOfMap(partitionId: number): boolean;
  /** Whether a replica here still holds part of the partition's range (its split is yet to apply here). */
  holdsRangeOf(partition: PartitionDescriptor): boolean;
}

/** What the reconciler reads of the node's map view (ClusterView). */
export interface PartitionMapView {
  hasMap(): boolean;
  partitions(): Iterable<PartitionDescriptor>;
  descriptorOf(partitionId: number): PartitionDescriptor | undefined;
}

export interface ReplicaReconcilerOptions {
  nodeId: NodeId;
  host: MultiRaftHost;
  view: PartitionMapView;
  replicas: PartitionReplicas;
  log: NodeLog;
  /** A learner within this many entries of the leader's commit index (and streaming) is caught up. Default 16. */
  catchUpSlack?: number;
  /**
   * How long an unlisted replica that does not know it was removed waits before going. Long, since
   * a replica deleted while its group still counts it forgets its votes. Default 300,000 ms.
   */
  removalGraceMs?: number;
  /** Milliseconds, for the grace period (default performance.now). */
  now?: () => number;
}

export interface ReconcilerStats {
  passes: number;
  replicasCreated: number;
  replicasRemoved: number;
  membershipChanges: number;
  leadershipTransfers: number;
  failures: number;
}

/** Partition ids start at 1; group 0 is the meta group (contracts #3), which is not reconciled. */
const isPartitionGroup = (groupId: number): boolean => groupId >= 1;

const votersOf = (partition: PartitionDescriptor): NodeId[] => partition.replicas.filter((r) => r.role === 'voter').map((r) => r.nodeId);
const learnersOf = (partition: PartitionDescriptor): NodeId[] => partition.replicas.filter((r) => r.role === 'learner').map((r) => r.nodeId);
const lists = (partition: PartitionDescriptor, nodeId: NodeId): boolean => partition.replicas.some((r) => r.nodeId === nodeId);

export class ReplicaReconciler {
  readonly stats: ReconcilerStats = { passes: 0, replicasCreated: 0, replicasRemoved: 0, membershipChanges: 0, leadershipTransfers: 0, failures: 0 };
  readonly #options: ReplicaReconcilerOptions;
  readonly #now: () => number;
  /** When each hosted replica was first seen unlisted. */
  readonly #unlistedSince = new Map<number, number>();
  /** Groups with a membership change in flight from here. */
  readonly #changing = new Set<number>();
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(options: ReplicaReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Runs a pass now, or right after the one running; resolves when that pass is done. */
  reconcile(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pass();
        } while (this.#again && !this.#closed);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  /** No pass starts after this; resolves once the running one is done. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#running;
  }

  async #pass(): Promise<void> {
    const { view, host, nodeId } = this.#options;
    if (!view.hasMap()) return;
    this.stats.passes++;
    for (const partition of view.partitions()) {
      if (this.#closed) return;
      if (!lists(partition, nodeId) || host.hasGroup(partition.id) || this.#options.replicas.holdsRangeOf(partition)) continue;
      await this.#attempt('create replica', partition.id, () => this.#create(partition));
    }
    for (const status of host.status()) {
      if (this.#closed) return;
      if (!isPartitionGroup(status.groupId)) continue;
      const partition = view.descriptorOf(status.groupId);
      if (partition === undefined && this.#options.replicas.aheadOfMap(status.groupId)) continue;
      if (partition === undefined || !lists(partition, nodeId)) {
        await this.#attempt('leave partition', status.groupId, () => this.#leave(status, partition));
        continue;
      }
      this.#unlistedSince.delete(status.groupId);
      if (status.role === 'leader') this.#converge(status, partition);
    }
  }

  async #attempt(what: string, partitionId: number, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.stats.failures++;
      this.#options.log.warn(`could not ${what}`, { partition: partitionId, error });
    }
  }

  async #create(partition: PartitionDescriptor): Promise<void> {
    const { host, replicas, nodeId, log } = this.#options;
    await replicas.open(partition);
    const voters = votersOf(partition);
    const bootstrap = partition.epoch === 1 && voters.includes(nodeId);
    if (bootstrap) await host.createGroup(partition.id, voters);
    else await host.joinGroup(partition.id);
    this.stats.replicasCreated++;
    log.info('replica created', { partition: partition.id, epoch: partition.epoch, bootstrap, voters });
  }

  async #leave(status: GroupStatus, partition: PartitionDescriptor | undefined): Promise<void> {
    const { host, replicas, nodeId, log } = this.#options;
    const groupId = status.groupId;
    if (partition !== undefined && status.role === 'leader') {
      this.#handOver(status, partition);
      return;
    }
    const since = this.#unlistedSince.get(groupId) ?? this.#now();
    this.#unlistedSince.set(groupId, since);
    const neverJoined = status.voters.length === 0 && status.learners.length === 0;
    const graceOver = this.#now() - since >= (this.#options.removalGraceMs ?? 300_000);
    if (partition !== undefined && !status.leftGroup && !neverJoined && !graceOver) return;
    const reason = partition === undefined ? 'partition deleted' : status.leftGroup ? 'removed from the group' : neverJoined ? 'never joined' : 'unlisted past the grace period';
    await host.removeGroup(groupId);
    this.#unlistedSince.delete(groupId);
    await replicas.drop(groupId);
    this.stats.replicasRemoved++;
    log.info('replica removed', { partition: groupId, reason, node: nodeId });
  }

  /** This leader is no longer wanted: it hands leadership to a wanted voter that is caught up. */
  #handOver(status: GroupStatus, partition: PartitionDescriptor): void {
    const { host, log } = this.#options;
    const to = votersOf(partition).find((n) => status.voters.includes(n) && this.#caughtUp(status, n));
    if (to === undefined) {
      // No wanted voter can lead yet: converge (add them) first.
      this.#converge(status, partition);
      return;
    }
    host.transferLeadership(status.groupId, to);
    this.stats.leadershipTransfers++;
    log.info('leadership handed over', { partition: status.groupId, to });
  }

  #caughtUp(status: GroupStatus, nodeId: NodeId): boolean {
    const progress = this.#options.host.progress(status.groupId)?.find((p) => p.nodeId === nodeId);
    return progress !== undefined && progress.state === 'replicate' && progress.match + (this.#options.catchUpSlack ?? 16) >= status.commit;
  }

  /** The next membership change towards the descriptor, if any, proposed in the background. */
  #converge(status: GroupStatus, partition: PartitionDescriptor): void {
    const groupId = status.groupId;
    if (this.#changing.has(groupId)) return;
    const change = this.#nextChange(status, partition);
    if (change === undefined) return;
    const { host, log } = this.#options;
    this.#changing.add(groupId);
    log.info('membership change proposed', { partition: groupId, change: change.kind, node: change.nodeId, epoch: partition.epoch });
    host.changeMembership(groupId, change).then(
      (conf) => {
        this.stats.membershipChanges++;
        log.info('membership changed', { partition: groupId, change: change.kind, node: change.nodeId, voters: conf.voters, learners: conf.learners });
      },
      (error: unknown) => {
        this.stats.failures++;
        log.warn('membership change failed', { partition: groupId, change: change.kind, node: change.nodeId, error });
      },
    ).finally(() => {
      this.#changing.delete(groupId);
      void this.reconcile();
    });
  }

  #nextChange(status: GroupStatus, partition: PartitionDescriptor): MembershipChange | undefined {
    const wantedVoters = votersOf(partition);
    const wantedLearners = learnersOf(partition);
    const members = new Set([...status.voters, ...status.learners]);
    const missing = [...wantedVoters, ...wantedLearners].find((n) => !members.has(n));
    if (missing !== undefined) return { kind: 'addLearner', nodeId: missing };
    const ready = wantedVoters.find((n) => status.learners.includes(n) && this.#caughtUp(status, n));
    if (ready !== undefined) return { kind: 'promote', nodeId: ready };
    const unwanted = (n: NodeId): boolean => !wantedVoters.includes(n) && !wantedLearners.includes(n);
    const strayLearner = status.learners.find(unwanted);
    if (strayLearner !== undefined) return { kind: 'remove', nodeId: strayLearner };
    // A voter leaves only once every wanted voter votes, so the group never shrinks below the wanted size.
    if (!wantedVoters.every((n) => status.voters.includes(n))) return undefined;
    // The leader itself leaves after handing over (see #leave).
    const strayVoter = status.voters.find((n) => unwanted(n) && n !== this.#options.nodeId);
    return strayVoter === undefined ? undefined : { kind: 'remove', nodeId: strayVoter };
  }
}
