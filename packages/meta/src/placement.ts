/**
 * The placement driver's decisions: pure functions from the meta state and a clock reading to the
 * actions the meta leader should carry out. Nothing here remembers a plan: each round looks at the
 * partitions as they are and proposes at most one step per partition, so a step that failed or was
 * overtaken is simply planned again (actions carry the epoch they were planned at; the executor
 * drops them when the partition has moved on).
 *
 * A replica is moved the Raft way, one change at a time: add a learner on the new node, promote it,
 * then remove the replica it replaces. Which replica goes is decided when the partition has one voter
 * too many: a dead one, then one on a draining node, then the one on the most loaded node.
 */
import type { PartitionDescriptor, ReplicaDescriptor } from '@shoal/model';
import { partitionList, placeableNodeIds, type MetaCommand, type MetaState, type NodeRecord } from './state.ts';
import { rankNodes } from './rendezvous.ts';

export type PlacementReason = 'repair' | 'drain' | 'rebalance';

export type PlacementAction =
  | { kind: 'addLearner'; partitionId: number; epoch: number; nodeId: number; reason: PlacementReason }
  | { kind: 'promoteLearner'; partitionId: number; epoch: number; nodeId: number; reason: PlacementReason }
  | { kind: 'removeReplica'; partitionId: number; epoch: number; nodeId: number; reason: PlacementReason }
  /** Ask the partition's leader to hand leadership to `nodeId`, a voter. */
  | { kind: 'transferLeader'; partitionId: number; epoch: number; nodeId: number; reason: PlacementReason };

export interface PlacementOptions {
  /** How long a node stays down before its replicas are replaced. */
  downTimeoutMs: number;
  /** Replica moves started per round by rebalancing (repairs are not bounded). */
  maxMoves?: number;
  /** Leader transfers per round by rebalancing. */
  maxLeaderTransfers?: number;
  /** Partitions rebalancing leaves where they are (an operator placed them); repairs and drains still move them. */
  pinned?: ReadonlySet<number>;
}

type ReplicaHealth = 'healthy' | 'waiting' | 'leaving' | 'dead';

interface Classified {
  partition: PartitionDescriptor;
  voters: Map<ReplicaHealth, number[]>;
  learners: Map<ReplicaHealth, number[]>;
}

/**
 * healthy: on an up node. waiting: on a node down for less than the timeout (it may come back).
 * leaving: on a draining node (or one being drained). dead: on a node down past the timeout, or gone.
 */
function healthOf(state: MetaState, nodeId: number, now: number, downTimeoutMs: number, leaving: ReadonlySet<number>): ReplicaHealth {
  const node = state.nodes[nodeId];
  if (!node) return 'dead';
  if (node.state === 'down') return mayComeBack(node, now, downTimeoutMs) ? 'waiting' : 'dead';
  if (node.state === 'draining' || leaving.has(nodeId)) return 'leaving';
  return 'healthy';
}

function classify(state: MetaState, partition: PartitionDescriptor, now: number, downTimeoutMs: number, leaving: ReadonlySet<number>): Classified {
  const voters = new Map<ReplicaHealth, number[]>();
  const learners = new Map<ReplicaHealth, number[]>();
  for (const r of partition.replicas) {
    const group = r.role === 'voter' ? voters : learners;
    const health = healthOf(state, r.nodeId, now, downTimeoutMs, leaving);
    group.set(health, [...(group.get(health) ?? []), r.nodeId]);
  }
  return { partition, voters, learners };
}

/** A down node within its grace period. */
function mayComeBack(node: NodeRecord, now: number, downTimeoutMs: number): boolean {
  return node.state === 'down' && now - (node.downSince ?? node.lastHeartbeatAt) < downTimeoutMs;
}

const count = (m: Map<ReplicaHealth, number[]>, h: ReplicaHealth) => m.get(h)?.length ?? 0;

/** Replicas per node and leaders per node (by leader hint), over all partitions. */
function loads(state: MetaState): { replicas: Map<number, number>; leaders: Map<number, number> } {
  const replicas = new Map<number, number>();
  const leaders = new Map<number, number>();
  for (const id of Object.keys(state.nodes)) {
    replicas.set(Number(id), 0);
    leaders.set(Number(id), 0);
  }
  for (const p of Object.values(state.partitions)) {
    for (const r of p.replicas) replicas.set(r.nodeId, (replicas.get(r.nodeId) ?? 0) + 1);
    if (p.leaderHint !== undefined) leaders.set(p.leaderHint, (leaders.get(p.leaderHint) ?? 0) + 1);
  }
  return { replicas, leaders };
}

/** The next step for one partition, or undefined when it is fine or cannot be helped automatically. */
function planPartition(
  state: MetaState,
  c: Classified,
  replicaLoad: ReadonlyMap<number, number>,
  leaderLoad: ReadonlyMap<number, number>,
  reason: PlacementReason,
): PlacementAction | undefined {
  const { partition } = c;
  const step = (kind: PlacementAction['kind'], nodeId: number): PlacementAction => ({
    kind,
    partitionId: partition.id,
    epoch: partition.epoch,
    nodeId,
    reason,
  });
  const rf = state.replicationFactor;
  const voterCount = partition.replicas.filter((r) => r.role === 'voter').length;
  const liveVoters = voterCount - count(c.voters, 'dead') - count(c.voters, 'waiting');
  // Without a live majority the group cannot change its membership; that needs an operator.
  if (liveVoters < Math.floor(voterCount / 2) + 1) return undefined;

  const deadOrLeavingLearner = [...(c.learners.get('dead') ?? []), ...(c.learners.get('leaving') ?? [])][0];
  if (deadOrLeavingLearner !== undefined) return step('removeReplica', deadOrLeavingLearner);

  const healthy = c.voters.get('healthy') ?? [];
  // Leadership leaves a draining node before anything else, so its removal does not cost an election.
  if (partition.leaderHint !== undefined && (c.voters.get('leaving') ?? []).includes(partition.leaderHint) && healthy.length > 0) {
    return step('transferLeader', leastLoaded(healthy, leaderLoad, partition.id));
  }

  // A learner on a node that may come back is a move in flight: wait for it rather than start another.
  if (c.learners.has('waiting')) return undefined;

  const healthyLearner = (c.learners.get('healthy') ?? [])[0];
  if (healthyLearner !== undefined) return step('promoteLearner', healthyLearner);

  const kept = healthy.length + count(c.voters, 'waiting');
  // Removing a live voter must leave a live majority of the smaller group (a dead one always may go).
  const majorityWithout = liveVoters - 1 >= Math.floor((voterCount - 1) / 2) + 1;
  const dead = c.voters.get('dead') ?? [];
  const replaceable = [...dead, ...(majorityWithout ? (c.voters.get('leaving') ?? []) : [])];
  // A replacement is added before the replica it replaces goes, but a group already a voter over
  // size drops one (dead first) before growing further: at most one extra voter at any time.
  if (replaceable.length > 0 && (kept >= rf || voterCount > rf)) return step('removeReplica', replaceable[0]);

  if (kept < rf) {
    const holders = new Set(partition.replicas.map((r) => r.nodeId));
    const candidate = rankNodes(partition.id, placeableNodeIds(state)).find((n) => !holders.has(n));
    if (candidate !== undefined) return step('addLearner', candidate);
    return undefined;
  }

  if (kept > rf) {
    // One voter too many, all alive: the last step of a move. Drop a waiting one (it is down), else
    // the one on the most loaded node (ties: least preferred by rendezvous), after moving
    // leadership off it.
    const waiting = c.voters.get('waiting') ?? [];
    if (waiting.length > 0) return step('removeReplica', waiting[0]);
    if (!majorityWithout) return undefined;
    const rank = rankNodes(partition.id, healthy);
    const worst = [...healthy].sort((a, b) => (replicaLoad.get(b) ?? 0) - (replicaLoad.get(a) ?? 0) || rank.indexOf(b) - rank.indexOf(a))[0];
    if (worst === partition.leaderHint) {
      return step('transferLeader', leastLoaded(healthy.filter((n) => n !== worst), leaderLoad, partition.id));
    }
    return step('removeReplica', worst);
  }
  return undefined;
}

/** Of some nodes, the one with the fewest of something; ties by rendezvous preference. */
function leastLoaded(nodeIds: readonly number[], load: ReadonlyMap<number, number>, partitionId: number): number {
  const rank = rankNodes(partitionId, nodeIds);
  return [...nodeIds].sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || rank.indexOf(a) - rank.indexOf(b))[0];
}

function planFixes(state: MetaState, now: number, downTimeoutMs: number, leaving: ReadonlySet<number>, only?: number): PlacementAction[] {
  const { replicas, leaders } = loads(state);
  const actions: PlacementAction[] = [];
  for (const partition of partitionList(state)) {
    if (only !== undefined && !partition.replicas.some((r) => r.nodeId === only)) continue;
    const c = classify(state, partition, now, downTimeoutMs, leaving);
    const drains = c.voters.has('leaving') || c.learners.has('leaving');
    const action = planPartition(state, c, replicas, leaders, only !== undefined || drains ? 'drain' : 'repair');
    if (action) actions.push(action);
  }
  return actions;
}

/**
 * One step for every partition that needs one: replicas on nodes down longer than `downTimeoutMs`
 * or on draining nodes are replaced (add a learner on the partition's next rendezvous choice,
 * promote it, remove the old replica), under-replicated partitions get replicas, over-replicated
 * ones lose one, and leadership leaves draining nodes.
 */
export function planRepairs(state: MetaState, now: number, downTimeoutMs: number): PlacementAction[] {
  return planFixes(state, now, downTimeoutMs, new Set());
}

/** The steps that empty `nodeId` of replicas and leaderships (whether or not it is marked draining yet). */
export function planDrain(state: MetaState, nodeId: number, now: number, downTimeoutMs: number): PlacementAction[] {
  return planFixes(state, now, downTimeoutMs, new Set([nodeId]), nodeId);
}

/**
 * Moves that even out replica counts and then leader counts over the up nodes, at most
 * `maxMoves` replica moves and `maxLeaderTransfers` transfers per round, only for partitions that
 * need no repair (every replica a voter on an up node, exactly the replication factor) and are not
 * pinned (their replicas still count in the loads). A move is
 * started by adding a learner; `planRepairs` finishes it.
 */
export function planRebalance(state: MetaState, options: { maxMoves?: number; maxLeaderTransfers?: number; pinned?: ReadonlySet<number> } = {}): PlacementAction[] {
  const maxMoves = options.maxMoves ?? 4;
  const pinned = options.pinned ?? new Set<number>();
  const maxTransfers = options.maxLeaderTransfers ?? 4;
  const nodes = placeableNodeIds(state);
  if (nodes.length < 2) return [];
  const up = new Set(nodes);
  const stable = partitionList(state).filter(
    (p) => !pinned.has(p.id) && p.replicas.length === state.replicationFactor && p.replicas.every((r) => r.role === 'voter' && up.has(r.nodeId)),
  );
  const { replicas, leaders } = loads(state);
  const actions: PlacementAction[] = [];
  const touched = new Set<number>();
  const extreme = (load: Map<number, number>, pick: (a: number, b: number) => boolean): number =>
    nodes.reduce((best, n) => (pick(load.get(n) ?? 0, load.get(best) ?? 0) ? n : best));

  for (let moves = 0; moves < maxMoves; moves++) {
    const source = extreme(replicas, (a, b) => a > b);
    const target = extreme(replicas, (a, b) => a < b);
    if ((replicas.get(source) ?? 0) - (replicas.get(target) ?? 0) < 2) break;
    const partition = stable.find(
      (p) => !touched.has(p.id) && p.replicas.some((r) => r.nodeId === source) && !p.replicas.some((r) => r.nodeId === target),
    );
    if (!partition) break;
    touched.add(partition.id);
    actions.push({ kind: 'addLearner', partitionId: partition.id, epoch: partition.epoch, nodeId: target, reason: 'rebalance' });
    replicas.set(source, (replicas.get(source) ?? 0) - 1);
    replicas.set(target, (replicas.get(target) ?? 0) + 1);
  }

  for (let transfers = 0; transfers < maxTransfers; transfers++) {
    const source = extreme(leaders, (a, b) => a > b);
    const sourceLeads = leaders.get(source) ?? 0;
    let chosen: { partition: PartitionDescriptor; target: number } | undefined;
    for (const p of stable) {
      if (touched.has(p.id) || p.leaderHint !== source) continue;
      const others = p.replicas.map((r) => r.nodeId).filter((n) => n !== source);
      const target = leastLoaded(others, leaders, p.id);
      if ((leaders.get(target) ?? 0) <= sourceLeads - 2) {
        chosen = { partition: p, target };
        break;
      }
    }
    if (!chosen) break;
    touched.add(chosen.partition.id);
    const { partition, target } = chosen;
    actions.push({ kind: 'transferLeader', partitionId: partition.id, epoch: partition.epoch, nodeId: target, reason: 'rebalance' });
    leaders.set(source, sourceLeads - 1);
    leaders.set(target, (leaders.get(target) ?? 0) + 1);
  }
  return actions;
}

/** A round of the placement driver: repairs and drains, or when there are none and no node may be coming back, rebalancing. */
export function planPlacement(state: MetaState, now: number, options: PlacementOptions): PlacementAction[] {
  const repairs = planRepairs(state, now, options.downTimeoutMs);
  // New moves wait until repairs and earlier moves are done (that bounds the changes in flight, and
  // loads are only compared once settled), and while a node that may come back is down.
  const waiting = Object.values(state.nodes).some((n) => mayComeBack(n, now, options.downTimeoutMs));
  return repairs.length > 0 || waiting ? repairs : planRebalance(state, options);
}

/**
 * Nodes that missed their heartbeats for `heartbeatTimeoutMs`: the markNodeDown commands the meta
 * leader proposes (stamped `now`). Their replicas are replaced once `downTimeoutMs` more has passed.
 */
export function planLiveness(state: MetaState, now: number, heartbeatTimeoutMs: number): MetaCommand[] {
  return Object.values(state.nodes)
    .filter((n) => n.state !== 'down' && now - n.lastHeartbeatAt >= heartbeatTimeoutMs)
    .sort((a, b) => a.id - b.id)
    .map((n) => ({ type: 'markNodeDown', nodeId: n.id, at: now }));
}

/** The replica set a membership action leads to. */
export function replicasAfter(partition: PartitionDescriptor, action: PlacementAction): ReplicaDescriptor[] {
  switch (action.kind) {
    case 'addLearner':
      return [...partition.replicas, { nodeId: action.nodeId, role: 'learner' }];
    case 'promoteLearner':
      return partition.replicas.map((r) => (r.nodeId === action.nodeId ? { nodeId: r.nodeId, role: 'voter' } : r));
    case 'removeReplica':
      return partition.replicas.filter((r) => r.nodeId !== action.nodeId);
    case 'transferLeader':
      return partition.replicas;
  }
}

/**
 * The meta command that records an action once carried out: the new replica set (at the epoch the
 * action was planned at, so a stale action is rejected), or the new leader.
 */
export function commandForAction(state: MetaState, action: PlacementAction): MetaCommand {
  if (action.kind === 'transferLeader') return { type: 'setLeaderHint', partitionId: action.partitionId, nodeId: action.nodeId };
  const partition = state.partitions[action.partitionId];
  if (!partition) throw new RangeError(`no partition ${action.partitionId}`);
  return { type: 'setReplicas', partitionId: action.partitionId, replicas: replicasAfter(partition, action), expectedEpoch: action.epoch };
}
