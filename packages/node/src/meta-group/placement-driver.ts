/**
 * The placement driver: on the meta leader only, every `intervalMs` it marks down the nodes that
 * missed their heartbeats and proposes one placement step per partition that needs one (repair,
 * drain, rebalance; @shoal/meta's planners). A step is a change of the partition's DESIRED replicas
 * (setReplicas at the planned epoch); partition leaders converge their Raft groups to it.
 *
 * Given the nodes' heartbeat reports, the driver changes a partition's descriptor again only once
 * its Raft group matches it (every replica on a live node reports the role the descriptor gives
 * it), so the descriptor is never more than one step ahead of the group: a replaced voter leaves
 * the descriptor (and its node deletes the data) only after its replacement votes.
 *
 * Splits a partition's group applied that the map misses (the meta leader that asked for them died
 * before recording them) are recorded first, from the halves' descriptors the nodes report.
 *
 * Leadership is not the driver's to move: partition leaders hand it over themselves when they are
 * removed. So it plans on the map without leader hints (no transferLeader steps: a draining or
 * surplus voter is removed from the descriptor directly, and leader counts are not balanced).
 *
 * Partitions an operator moved (`pins`) are left where they were put by rebalancing.
 *
 * With `splitting`, every round also decides splits for size and heat (auto-splitter.ts) and makes
 * them one at a time, each followed by a leadership move of its right half to another node.
 */
import {
  commandForAction,
  MetaCommandError,
  planLiveness,
  planPlacement,
  type MetaState,
  type PlacementAction,
} from '@shoal/meta';
import type { SplitPolicy } from '@shoal/meta';
import type { PartitionDescriptor } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import type { MultiRaftHost } from '../host/index.ts';
import { AutoSplitter, type AutoSplitStats, type HotKeys } from './auto-splitter.ts';
import type { LeadershipTransfers } from './leadership-transfers.ts';
import { MetaGroup } from './meta-group.ts';
import type { MetaReplica } from './meta-replica.ts';
import type { NodeReports } from './node-reports.ts';
import { unrecordedSplits, type PartitionSplitter } from './partition-splits.ts';
import type { PlacementPins } from './placement-pins.ts';

export interface PlacementLogEntry {
  level: 'info' | 'warn';
  event: string;
  [field: string]: unknown;
}

export interface PlacementDriverOptions {
  host: MultiRaftHost;
  meta: MetaReplica;
  nodeId: NodeId;
  /** Milliseconds since the epoch (default Date.now). */
  clock?: () => number;
  /** Between rounds (default 1,000 ms). */
  intervalMs?: number;
  /**
   * A node is marked down after this long without a heartbeat (default 5,000 ms); a new meta
   * leader first waits this long, so that nodes find it before it judges them.
   */
  heartbeatTimeoutMs?: number;
  /** A down node's replicas are replaced after it stayed down this long (default 30,000 ms). */
  downTimeoutMs?: number;
  /** Replica moves started per round by rebalancing (default 4). */
  maxMoves?: number;
  /**
   * The nodes' heartbeat reports (MetaServices.reports): liveness counts the heartbeats they
   * record, and steps wait for the partition's group to match its descriptor. Without them every
   * round takes the next step at once.
   */
  reports?: NodeReports;
  /**
   * Splits for size and heat (needs `reports`): the cluster's policy (tables override it with their
   * tags), and the services' splitter, leadership moves and hot item list (MetaServices).
   */
  splitting?: { policy: SplitPolicy; splitter: PartitionSplitter; transfers: LeadershipTransfers; hotKeys: HotKeys };
  /** Partitions operators moved (MetaServices.pins): rebalancing leaves them where they are. */
  pins?: PlacementPins;
  log?(entry: PlacementLogEntry): void;
}

/** What one round did. */
export interface PlacementRound {
  /** Nodes marked down. */
  markedDown: NodeId[];
  /** Steps recorded in the map. */
  applied: PlacementAction[];
  /** Steps the meta state refused (the partition moved on meanwhile); planned again next round. */
  refused: PlacementAction[];
  /** Steps not taken yet: the partition's group does not match its descriptor yet. */
  waiting: PlacementAction[];
  /** Right halves of splits recorded from the nodes' reports. */
  splitsRecorded: number[];
}

export class PlacementDriver {
  readonly #group: MetaGroup;
  readonly #clock: () => number;
  readonly #intervalMs: number;
  readonly #heartbeatTimeoutMs: number;
  readonly #downTimeoutMs: number;
  readonly #maxMoves: number;
  readonly #reports: NodeReports | undefined;
  readonly #pins: PlacementPins | undefined;
  readonly #log: (entry: PlacementLogEntry) => void;
  readonly #autoSplitter: AutoSplitter | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<unknown> | undefined;
  #running = false;
  /** When this node was first seen leading, and in which term (a later term is a new leadership). */
  #leadership: { term: number; since: number } | undefined;

  constructor(options: PlacementDriverOptions) {
    this.#group = new MetaGroup(options.host, options.meta, options.nodeId);
    this.#clock = options.clock ?? Date.now;
    this.#intervalMs = options.intervalMs ?? 1_000;
    this.#heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5_000;
    this.#downTimeoutMs = options.downTimeoutMs ?? 30_000;
    this.#maxMoves = options.maxMoves ?? 4;
    this.#reports = options.reports;
    this.#pins = options.pins;
    this.#log = options.log ?? (() => {});
    const splitting = options.splitting;
    this.#autoSplitter =
      splitting === undefined || options.reports === undefined
        ? undefined
        : new AutoSplitter({
            group: this.#group,
            splitter: splitting.splitter,
            reports: options.reports,
            transfers: splitting.transfers,
            hotKeys: splitting.hotKeys,
            policy: splitting.policy,
            clock: this.#clock,
            maxReportAgeMs: this.#heartbeatTimeoutMs,
            log: this.#log,
          });
  }

  /** Splits made and hot items found (zeros without `splitting`). */
  get splitStats(): AutoSplitStats {
    return this.#autoSplitter?.stats ?? { splitsForSize: 0, splitsForHeat: 0, splitFailures: 0, hotKeysReported: 0 };
  }

  /** Runs a round every intervalMs (rounds never overlap); a round does nothing unless this node leads. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  /** Stops the loop and waits for the round in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
    await this.#autoSplitter?.stop();
  }

  /** One round now; undefined when this node does not lead the meta group. */
  async runOnce(): Promise<PlacementRound | undefined> {
    const group = this.#group;
    const term = group.term();
    if (!group.isLeader() || term === undefined) {
      this.#leadership = undefined;
      return undefined;
    }
    const now = this.#clock();
    if (this.#leadership?.term !== term) this.#leadership = { term, since: now };
    const state = await group.read();
    const round: PlacementRound = { markedDown: [], applied: [], refused: [], waiting: [], splitsRecorded: [] };
    const reported = Object.values(state.nodes).flatMap((node) => this.#reports?.get(node.id)?.loads ?? []);
    for (const command of unrecordedSplits(state, reported)) {
      if (await this.#propose(() => group.propose(command))) {
        round.splitsRecorded.push(command.rightId ?? 0);
        this.#log({ level: 'info', event: 'split_recorded_from_reports', partition: command.partitionId, right: command.rightId });
      }
    }
    if (now - this.#leadership.since >= this.#heartbeatTimeoutMs) {
      for (const command of planLiveness(this.#withReportedHeartbeats(state), now, this.#heartbeatTimeoutMs)) {
        if (command.type !== 'markNodeDown') continue;
        if (await this.#propose(() => group.propose(command))) {
          round.markedDown.push(command.nodeId);
          this.#log({ level: 'warn', event: 'node_marked_down', node: command.nodeId, lastHeartbeatAt: state.nodes[command.nodeId]?.lastHeartbeatAt });
        }
      }
    }
    const current = group.meta.state;
    const planned: PlacementAction[] = [];
    for (const action of planPlacement(withoutLeaderHints(current), now, {
      downTimeoutMs: this.#downTimeoutMs,
      maxMoves: this.#maxMoves,
      maxLeaderTransfers: 0,
      pinned: this.#pins?.pinned(current),
    })) {
      // A new member of any partition (a split half's too) is caught up by a partition snapshot.
      const reports = this.#reports;
      if (reports === undefined || groupMatchesDescriptor(current, reports, current.partitions[action.partitionId])) planned.push(action);
      else round.waiting.push(action);
    }
    // One step per partition: the proposals do not interfere with each other.
    const outcomes = await Promise.all(planned.map((action) => this.#propose(() => group.propose(commandForAction(group.meta.state, action)))));
    planned.forEach((action, i) => {
      (outcomes[i] ? round.applied : round.refused).push(action);
      if (outcomes[i]) this.#log({ level: 'info', event: 'placement_step', ...action });
    });
    this.#autoSplitter?.round(group.meta.state, now);
    return round;
  }

  /** The state with each node's last heartbeat as this leader heard it, when later than the recorded one. */
  #withReportedHeartbeats(state: MetaState): MetaState {
    const reports = this.#reports;
    if (reports === undefined) return state;
    const nodes: MetaState['nodes'] = {};
    for (const node of Object.values(state.nodes)) {
      nodes[node.id] = { ...node, lastHeartbeatAt: Math.max(node.lastHeartbeatAt, reports.get(node.id)?.at ?? 0) };
    }
    return { ...state, nodes };
  }

  /** Proposes; false when the meta state refused the command, which the next round plans anew. */
  async #propose(propose: () => Promise<unknown>): Promise<boolean> {
    try {
      await propose();
      return true;
    } catch (error) {
      if (error instanceof MetaCommandError) return false;
      throw error;
    }
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const round = this.runOnce().catch((error: unknown) => {
        // Leadership lost or a timeout: the next round starts over from the state then.
        this.#log({ level: 'warn', event: 'placement_round_failed', error: error instanceof Error ? error.message : String(error) });
      });
      this.#round = round;
      void round.finally(() => {
        if (this.#running) this.#schedule();
      });
    }, this.#intervalMs);
  }
}

/**
 * Whether a partition's Raft group matches its descriptor: every replica on a live node reports the
 * role the descriptor gives it (down nodes report nothing). Only then may the descriptor change again.
 */
export function groupMatchesDescriptor(state: MetaState, reports: NodeReports, partition: PartitionDescriptor): boolean {
  return partition.replicas.every((r) => {
    const node = state.nodes[r.nodeId];
    return node === undefined || node.state === 'down' || reports.roleOf(r.nodeId, partition.id) === r.role;
  });
}

/** The state as the planners should see it here: no leader hints, so no leadership steps. */
function withoutLeaderHints(state: MetaState): MetaState {
  const partitions: Record<number, PartitionDescriptor> = {};
  for (const [id, partition] of Object.entries(state.partitions)) {
    const { leaderHint: _hint, ...rest } = partition;
    partitions[Number(id)] = rest;
  }
  return { ...state, partitions };
}
