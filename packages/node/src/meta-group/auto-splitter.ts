/**
 * Splits for size and heat, decided on the meta leader (a round of the placement driver). Why there
 * and not on the partition leaders: the meta leader hears every replica's load (the hottest replica
 * of a partition may be a follower serving eventually consistent reads), holds the table settings
 * (the `shoal:split*` tags over the cluster policy), makes the split itself (reserve an id, split in
 * the partition's log, record it) and so can follow it with the leadership move that sends half of
 * the load to another node. The decisions are @shoal/meta's pure `planSplits`; this keeps their
 * clock (since when each partition runs hot), carries out one split at a time, logs every split with
 * its reason, and keeps the hot items it found for Status.
 *
 * After a split the right half's leadership is asked to move to the voter leading the fewest
 * partitions other than the parent's leader (replica moves for split halves would need partition
 * snapshots; leadership needs none). So it is after a split whose call failed but which applied all
 * the same (an answer lost, a leader stalled past its deadline): the placement driver records it from
 * the nodes' reports, and once the map shows the right half, its leadership moves if both halves are
 * still led by one node. Both halves' reports are ignored for `settleMs`: a node restarts a replica's
 * measures when its range changes, and a report older than that still tells of the parent.
 */
import {
  planSplits,
  tableSplitPolicy,
  type MetaState,
  type PartitionLoadReport,
  type SplitDecision,
  type SplitPolicy,
} from '@shoal/meta';
import { compareBytes, spaceLabel, spaceOwners, type PartitionDescriptor, type TableRecord } from '@shoal/model';
import type { PartitionLoad } from '@shoal/proto';
import type { NodeId } from '@shoal/raft';
import type { LeadershipTransfers } from './leadership-transfers.ts';
import type { MetaGroup } from './meta-group.ts';
import type { NodeReports } from './node-reports.ts';
import { splitAndRecord, type PartitionSplitter } from './partition-splits.ts';
import type { PlacementLogEntry } from './placement-driver.ts';

/** A hot item the meta leader reports (AdminService.Status, logs, metrics). */
export interface HotKeyReport {
  partitionId: number;
  tableId: number;
  key: Uint8Array;
  /** Its share of the sampled load. */
  share: number;
  utilization: number;
  /** When first reported (the driver's clock). */
  since: number;
}

/**
 * How long the right half of a failed split is watched for in the map: the placement driver records
 * a split that applied within a heartbeat or two of the nodes reporting it.
 */
const FAILED_SPLIT_WATCH_MS = 60_000;

/** A hot item stays listed this long after the last round that found it: load near the threshold comes and goes. */
const HOT_KEY_LINGER_MS = 30_000;

/** The hot items found lately, by partition (read by Status). */
export class HotKeys {
  readonly #byPartition = new Map<number, HotKeyReport & { seenAt: number }>();

  list(): HotKeyReport[] {
    return [...this.#byPartition.values()].sort((a, b) => a.partitionId - b.partitionId).map(({ seenAt: _seen, ...report }) => report);
  }

  /**
   * Takes a round's hot items: each replaces its partition's (keeping `since` for the same key); the
   * others stay listed for HOT_KEY_LINGER_MS unless `gone` says their partition split or left.
   * Returns the reports that are new (another partition, or another key).
   */
  update(reports: HotKeyReport[], now: number, gone: (partitionId: number) => boolean): HotKeyReport[] {
    const fresh: HotKeyReport[] = [];
    for (const report of reports) {
      const known = this.#byPartition.get(report.partitionId);
      const same = known !== undefined && compareBytes(known.key, report.key) === 0;
      this.#byPartition.set(report.partitionId, { ...report, since: same ? known.since : report.since, seenAt: now });
      if (!same) fresh.push(report);
    }
    for (const [partitionId, known] of this.#byPartition) {
      if (gone(partitionId) || now - known.seenAt > HOT_KEY_LINGER_MS) this.#byPartition.delete(partitionId);
    }
    return fresh;
  }
}

export interface AutoSplitStats {
  splitsForSize: number;
  splitsForHeat: number;
  splitFailures: number;
  /** Hot items reported so far (each partition and key once while it stays hot). */
  hotKeysReported: number;
}

export interface AutoSplitterOptions {
  group: MetaGroup;
  splitter: PartitionSplitter;
  reports: NodeReports;
  transfers: LeadershipTransfers;
  hotKeys: HotKeys;
  /** The cluster's policy; tables override it with their tags. */
  policy: SplitPolicy;
  clock: () => number;
  /** Reports older than this are left out (their node stopped reporting). */
  maxReportAgeMs: number;
  /** Halves' reports ignored after a split (default 3,000 ms: a few heartbeats). */
  settleMs?: number;
  log(entry: PlacementLogEntry): void;
}

export class AutoSplitter {
  readonly stats: AutoSplitStats = { splitsForSize: 0, splitsForHeat: 0, splitFailures: 0, hotKeysReported: 0 };
  readonly #options: AutoSplitterOptions;
  #heatSince = new Map<number, number>();
  /** Partitions whose reports are ignored until the time given (halves of a recent split). */
  readonly #settling = new Map<number, number>();
  readonly #invalidTagsLogged = new Set<string>();
  /** Partitions (and why) found unsplittable last round: logged when they first are. */
  #unsplittable = new Set<string>();
  /** The last failure logged per partition: a split refused round after round is logged once. */
  readonly #failureLogged = new Map<number, string>();
  /** Right-half ids of failed splits, until when they are watched for: the split may have applied and be recorded from the reports. */
  readonly #failedSplits = new Map<number, { parentId: number; until: number }>();
  #inFlight: Promise<void> | undefined;

  constructor(options: AutoSplitterOptions) {
    this.#options = options;
  }

  /** Plans on `state` and starts the first split decided, unless one is still being made. */
  round(state: MetaState, now: number): void {
    this.#spreadRecordedSplits(state, now);
    // Once a round per table, not per partition.
    const policies = new Map<number, SplitPolicy>();
    // A GSI's partitions split by the policy of its table (its tags).
    const owners = spaceOwners(Object.values(state.tables));
    const { decisions, heatSince } = planSplits({
      state,
      loads: this.#loads(state, now),
      policyOf: (tableId) => {
        let policy = policies.get(tableId);
        if (policy === undefined) policies.set(tableId, (policy = this.#policyOf(owners.get(tableId)?.record)));
        return policy;
      },
      now,
      heatSince: this.#heatSince,
    });
    this.#heatSince = heatSince;
    this.#reportHotKeys(state, decisions, now);
    const split = decisions.find((d): d is Extract<SplitDecision, { kind: 'split' }> => d.kind === 'split');
    const unsplittable = new Set<string>();
    for (const decision of decisions) {
      if (decision.kind !== 'unsplittable') continue;
      const id = `${decision.partitionId}/${decision.reason}`;
      unsplittable.add(id);
      if (!this.#unsplittable.has(id)) this.#options.log({ level: 'warn', event: 'split_not_possible', partition: decision.partitionId, reason: decision.reason, why: decision.why });
    }
    this.#unsplittable = unsplittable;
    for (const id of this.#failureLogged.keys()) if (state.partitions[id] === undefined) this.#failureLogged.delete(id);
    if (split === undefined || this.#inFlight !== undefined) return;
    this.#inFlight = this.#split(state, split).finally(() => {
      this.#inFlight = undefined;
    });
  }

  /** Waits for the split being made. */
  async stop(): Promise<void> {
    await this.#inFlight;
  }

  async #split(state: MetaState, decision: Extract<SplitDecision, { kind: 'split' }>): Promise<void> {
    const { group, splitter, reports, log, clock } = this.#options;
    const parent = state.partitions[decision.partitionId];
    const leaderBefore = reports.leaderOf(parent.id);
    // The table's name, or table/index for a GSI's partition.
    const owner = spaceOwners(Object.values(state.tables)).get(parent.tableId);
    const table = owner === undefined ? undefined : spaceLabel(owner);
    let rightId: number | undefined;
    try {
      const { left, right } = await splitAndRecord(group, splitter, parent, decision.splitKey, (id) => (rightId = id));
      this.#failureLogged.delete(parent.id);
      const now = clock();
      for (const id of [left.id, right.id]) {
        this.#heatSince.delete(id);
        this.#settling.set(id, now + (this.#options.settleMs ?? 3_000));
      }
      if (decision.reason === 'size') this.stats.splitsForSize++;
      else this.stats.splitsForHeat++;
      log({
        level: 'info',
        event: 'partition_split',
        reason: decision.reason,
        table,
        partition: left.id,
        right: right.id,
        splitKey: Buffer.from(decision.splitKey).toString('hex'),
        sizeBytes: decision.sizeBytes,
        utilization: Math.round(decision.utilization * 100) / 100,
      });
      this.#spread(group.meta.state, right, leaderBefore, now);
    } catch (error) {
      this.stats.splitFailures++;
      if (rightId !== undefined) this.#failedSplits.set(rightId, { parentId: parent.id, until: clock() + FAILED_SPLIT_WATCH_MS });
      const message = error instanceof Error ? error.message : String(error);
      if (this.#failureLogged.get(parent.id) === message) return;
      this.#failureLogged.set(parent.id, message);
      log({ level: 'warn', event: 'split_failed', partition: parent.id, reason: decision.reason, error: message, note: 'tried again next round; the same failure is not logged again' });
    }
  }

  /** Asks the right half's leadership to move off `leaderBefore` (the parent's leader), to the voter leading the fewest partitions. */
  #spread(state: MetaState, right: PartitionDescriptor, leaderBefore: NodeId | undefined, now: number): void {
    const target = this.#leastLeading(state, right, leaderBefore);
    if (target === undefined) return;
    this.#options.transfers.request(right.id, target, now);
    this.#options.log({ level: 'info', event: 'leadership_move_requested', partition: right.id, from: leaderBefore, to: target, why: 'split halves on different nodes' });
  }

  /** The right halves of failed splits the map now shows (recorded from the reports): spread like any split's, unless their halves are led apart already. */
  #spreadRecordedSplits(state: MetaState, now: number): void {
    for (const [rightId, { parentId, until }] of this.#failedSplits) {
      const right = state.partitions[rightId];
      if (right === undefined) {
        if (now >= until) this.#failedSplits.delete(rightId);
        continue;
      }
      this.#failedSplits.delete(rightId);
      const leftLeader = this.#options.reports.leaderOf(parentId);
      const rightLeader = this.#options.reports.leaderOf(rightId);
      if (rightLeader !== undefined && rightLeader !== leftLeader) continue;
      this.#spread(state, right, leftLeader ?? rightLeader, now);
    }
  }

  /** The voter of `partition` other than `exclude` that leads the fewest partitions (lowest id first). */
  #leastLeading(state: MetaState, partition: PartitionDescriptor, exclude: NodeId | undefined): NodeId | undefined {
    const led = new Map<NodeId, number>();
    for (const id of Object.keys(state.partitions)) {
      const leader = this.#options.reports.leaderOf(Number(id));
      if (leader !== undefined) led.set(leader, (led.get(leader) ?? 0) + 1);
    }
    const voters = partition.replicas.filter((r) => r.role === 'voter' && r.nodeId !== exclude && state.nodes[r.nodeId]?.state === 'up').map((r) => r.nodeId);
    return voters.sort((a, b) => (led.get(a) ?? 0) - (led.get(b) ?? 0) || a - b)[0];
  }

  /** The fresh reports of every node, as the planner takes them. */
  #loads(state: MetaState, now: number): PartitionLoadReport[] {
    const loads: PartitionLoadReport[] = [];
    for (const [id, until] of this.#settling) if (now >= until) this.#settling.delete(id);
    for (const node of Object.values(state.nodes)) {
      const report = this.#options.reports.get(node.id);
      if (report === undefined || now - report.at > this.#options.maxReportAgeMs) continue;
      for (const load of report.loads) {
        if (load.partitionId > BigInt(Number.MAX_SAFE_INTEGER) || this.#settling.has(Number(load.partitionId))) continue;
        loads.push(loadFromWire(load));
      }
    }
    return loads;
  }

  #policyOf(record: TableRecord | undefined): SplitPolicy {
    if (record === undefined) return this.#options.policy;
    const { policy, invalid } = tableSplitPolicy(this.#options.policy, record.tags);
    for (const tag of invalid) {
      const id = `${record.schema.name}/${tag}/${record.tags[tag]}`;
      if (this.#invalidTagsLogged.has(id)) continue;
      this.#invalidTagsLogged.add(id);
      this.#options.log({ level: 'warn', event: 'split_tag_ignored', table: record.schema.name, tag, value: record.tags[tag] });
    }
    return policy;
  }

  #reportHotKeys(state: MetaState, decisions: SplitDecision[], now: number): void {
    const reports: HotKeyReport[] = [];
    for (const decision of decisions) {
      if (decision.kind !== 'hotKey') continue;
      const partition = state.partitions[decision.partitionId];
      reports.push({ partitionId: partition.id, tableId: partition.tableId, key: decision.key, share: decision.share, utilization: decision.utilization, since: now });
    }
    // A partition that just split (its halves settling) is not the one that was hot any more.
    const gone = (id: number): boolean => state.partitions[id] === undefined || this.#settling.has(id);
    for (const fresh of this.#options.hotKeys.update(reports, now, gone)) {
      this.stats.hotKeysReported++;
      const table = Object.values(state.tables).find((r) => r.schema.tableId === fresh.tableId)?.schema.name;
      this.#options.log({
        level: 'warn',
        event: 'hot_key',
        why: 'one key carries most of the partition load: no split divides it',
        table,
        partition: fresh.partitionId,
        key: Buffer.from(fresh.key).toString('hex'),
        share: Math.round(fresh.share * 100) / 100,
        utilization: Math.round(fresh.utilization * 100) / 100,
      });
    }
  }
}

function loadFromWire(load: PartitionLoad): PartitionLoadReport {
  return {
    partitionId: Number(load.partitionId),
    sizeBytes: Number(load.sizeBytes),
    readUnitsPerSecond: load.readUnitsPerSecond,
    writeUnitsPerSecond: load.writeUnitsPerSecond,
    readUnitLimit: load.readUnitLimit,
    writeUnitLimit: load.writeUnitLimit,
    sampledKeys: load.sampledKeys.map(({ key, weight, leftWeight, rightWeight, spanningWeight }) => ({ key, weight, leftWeight, rightWeight, spanningWeight })),
  };
}
