/**
 * The partition replicas of a storage node, which its MultiRaftHost asks for synchronously: each is
 * opened (reading its applied index from the node's store) before its group starts.
 *
 * For each replica it remembers the last descriptor and table schema the map gave, in a small file
 * (`<dataDir>/partitions.json`) so that they outlive a restart: a replica's bound is right from the
 * start (entries replayed before the map arrives apply within it), and the data of a replica can be
 * deleted even when its table was deleted while the node was down. A replica whose log is gone but
 * whose data may remain (a crash between deleting one and the other) has its data deleted at start.
 *
 * A replica's key range is replicated state: it is set when the replica is created and changed only
 * by the splits its group applies (PartitionReplica's `onSplit`), so a map that lags or leads the
 * group never moves it; the map gives the epoch, replicas and leader hint when it is not older. A
 * split records both halves here before the right half's group is created and before the split's
 * entry counts as applied: replaying the entry after a crash finds what is missing and finishes it.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { rangesOverlap, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { partitionBound, type BackfillChunkLimits, type LocalStore } from '@shoal/storage';
import type { MultiRaftHost } from '../host/index.ts';
import { PartitionReplica, type AppliedBackfillChunk, type AppliedSplit, type PartitionSplit, type RestoredPartition, type SplitResult } from '../partition/index.ts';
import type { ClusterView } from './cluster-view.ts';
import type { NodeLog } from './log.ts';
import type { PartitionReplicas } from './replica-reconciler.ts';

interface KnownPartition {
  descriptor: PartitionDescriptor;
  /** Unknown when the map never listed the table while this node held the replica. */
  table: TableSchema | undefined;
  /** The splits its group applied here, oldest first. */
  splits: AppliedSplit[];
  /** A right half: the parent's entry that split it off. */
  bornOf?: { parentId: number; index: number };
}

/** The file's JSON: keys in base64. */
interface KnownPartitionsFile {
  partitions: Array<{
    descriptor: Omit<PartitionDescriptor, 'startKey' | 'endKey'> & { startKey: string; endKey: string };
    table?: TableSchema;
    splits?: Array<{ index: number; splitKey: string }>;
    bornOf?: { parentId: number; index: number };
  }>;
}

/** What a split needs of the node's Raft host. */
export type SplitHost = Pick<MultiRaftHost, 'nodeId' | 'hasGroup' | 'openOrCreateGroup' | 'configuration' | 'leaderOf' | 'campaign'>;

/** Ancestors a split half's fences name at most (a cycle in a corrupt file cannot loop). */
const MAX_ANCESTORS = 64;

const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const fromBase64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));

export class PartitionReplicaSet implements PartitionReplicas {
  readonly #store: LocalStore;
  readonly #view: ClusterView;
  readonly #log: NodeLog;
  readonly #path: string;
  readonly #replicas = new Map<number, PartitionReplica>();
  readonly #known = new Map<number, KnownPartition>();
  #saving: Promise<void> = Promise.resolve();
  #host: SplitHost | undefined;
  #settledListener: ((partitionId: number) => void) | undefined;
  #backfillChunkListener: ((chunk: AppliedBackfillChunk) => void) | undefined;
  /**
   * Split halves whose parent here has not applied the split again (its data regressed in a crash):
   * their groups start only when it does, or their entries could apply before the parent's older ones.
   */
  readonly #waitingForParent = new Set<number>();

  /** How much one chunk of a GSI backfill walks (undefined: the store's default). */
  readonly #backfillChunk: BackfillChunkLimits | undefined;

  private constructor(store: LocalStore, view: ClusterView, log: NodeLog, path: string, backfillChunk: BackfillChunkLimits | undefined) {
    this.#store = store;
    this.#view = view;
    this.#log = log;
    this.#path = path;
    this.#backfillChunk = backfillChunk;
  }

  /**
   * Loads what the file at `path` remembers, opens the replica of every group in `hostedGroups`
   * (the partition groups of the Raft log store), and deletes the data of remembered replicas whose
   * group is gone.
   */
  static async open(store: LocalStore, view: ClusterView, log: NodeLog, path: string, hostedGroups: readonly number[], backfillChunk?: BackfillChunkLimits): Promise<PartitionReplicaSet> {
    const set = new PartitionReplicaSet(store, view, log, path, backfillChunk);
    await set.#load();
    for (const id of hostedGroups) set.#replicas.set(id, await set.#openReplica(id));
    for (const id of hostedGroups) {
      const bornOf = set.#known.get(id)?.bornOf;
      if (bornOf !== undefined && set.#replicas.has(bornOf.parentId) && (await store.partitions.appliedIndex(bornOf.parentId)) < bornOf.index) set.#waitingForParent.add(id);
    }
    const orphans = [...set.#known.keys()].filter((id) => !set.#replicas.has(id));
    for (const id of orphans) {
      const bornOf = set.#known.get(id)?.bornOf;
      if (bornOf !== undefined && set.#replicas.has(bornOf.parentId) && (await store.partitions.appliedIndex(bornOf.parentId)) < bornOf.index) {
        // A crash before the right half's group was created: its data is the parent's until the
        // parent applies the split again, which creates it.
        set.#known.delete(id);
        continue;
      }
      log.warn('deleting the data of a replica whose Raft log is gone', { partition: id });
      await set.drop(id);
    }
    await set.#save();
    return set;
  }

  /** Whether the host should not start this group yet (see `open`): its parent's split creates it again. */
  waitsForParent(partitionId: number): boolean {
    return this.#waitingForParent.has(partitionId);
  }

  /** Told whenever a replica's applied writes are in the store (the index shipper ships its new outbox records). */
  onReplicaSettled(listener: (partitionId: number) => void): void {
    this.#settledListener = listener;
  }

  /** Told of every backfill chunk entry a replica applied (the backfill driver counts those this node proposed). */
  onBackfillChunkApplied(listener: (chunk: AppliedBackfillChunk) => void): void {
    this.#backfillChunkListener = listener;
  }

  /**
   * The partitions a split half was split from, nearest first, as far as this node remembers them,
   * each with the key from which its records are the half's now (the half's start): the fences the
   * half's index shipper sends (records of those items in an ancestor's call still on the wire are stale).
   */
  ancestorsOf(partitionId: number): Array<{ partitionId: number; fromKey: Uint8Array }> {
    const ancestors: Array<{ partitionId: number; fromKey: Uint8Array }> = [];
    let current = this.#known.get(partitionId);
    while (current?.bornOf !== undefined && ancestors.length < MAX_ANCESTORS) {
      ancestors.push({ partitionId: current.bornOf.parentId, fromKey: current.descriptor.startKey });
      current = this.#known.get(current.bornOf.parentId);
    }
    return ancestors;
  }

  /** The splits a replica's group applied here, oldest first. */
  splitsOf(partitionId: number): readonly AppliedSplit[] {
    return this.#known.get(partitionId)?.splits ?? [];
  }

  /** The host that creates the right halves of splits; bound before it applies any entry. */
  bindHost(host: SplitHost): void {
    this.#host = host;
  }

  /**
   * The descriptor of a replica held here (its own, which leads the map after a split the map does
   * not show yet), else the map's.
   */
  descriptorOf(partitionId: number): PartitionDescriptor | undefined {
    return this.#known.get(partitionId)?.descriptor ?? this.#view.descriptorOf(partitionId);
  }

  /**
   * The replica's own descriptor when the map lags it (a split the map does not show yet), for the
   * node's heartbeat: the placement driver records such a split.
   */
  descriptorAheadOf(partitionId: number): PartitionDescriptor | undefined {
    const own = this.#replicas.has(partitionId) ? this.#known.get(partitionId)?.descriptor : undefined;
    const mapped = this.#view.descriptorOf(partitionId);
    return own !== undefined && (mapped === undefined || mapped.epoch < own.epoch) ? own : undefined;
  }

  /**
   * Whether the replica is a split half the map does not list yet: its table is in the map, and the
   * map's partitions over its range are older than it (the map still shows the parent).
   */
  aheadOfMap(partitionId: number): boolean {
    const known = this.#known.get(partitionId);
    if (known?.bornOf === undefined || this.#view.descriptorOf(partitionId) !== undefined) return false;
    const { tableId, startKey, endKey, epoch } = known.descriptor;
    if (this.#view.tableOf(tableId) === undefined) return false;
    const covering = [...this.#view.partitions()].filter((p) => p.tableId === tableId && rangesOverlap(p.startKey, p.endKey, startKey, endKey));
    return covering.length > 0 && covering.every((p) => p.epoch < epoch);
  }

  /**
   * Whether a replica here still holds part of `partition`'s range: a parent that has yet to apply
   * the split creating `partition`, which must not be created before (its data would be older than
   * its log).
   */
  holdsRangeOf(partition: PartitionDescriptor): boolean {
    if (this.#waitingForParent.has(partition.id)) return true;
    for (const [id, known] of this.#known) {
      if (id === partition.id || !this.#replicas.has(id) || known.descriptor.tableId !== partition.tableId) continue;
      if (rangesOverlap(known.descriptor.startKey, known.descriptor.endKey, partition.startKey, partition.endKey)) return true;
    }
    return false;
  }

  get size(): number {
    return this.#replicas.size;
  }

  get(partitionId: number): PartitionReplica | undefined {
    return this.#replicas.get(partitionId);
  }

  /**
   * A new replica about to be created here starts from no data: what an earlier replica of the
   * partition left (a crash between deleting its log and deleting its data) would otherwise count
   * as applied, and the new replica would skip those entries of the log.
   */
  async open(partition: PartitionDescriptor): Promise<void> {
    if (this.#replicas.has(partition.id)) return;
    this.#remember(partition);
    await this.#save();
    if ((await this.#store.partitions.appliedIndex(partition.id)) > 0) {
      this.#log.warn('deleting the data an earlier replica of the partition left', { partition: partition.id });
      await this.#dropData(partition.id);
    }
    this.#replicas.set(partition.id, await this.#openReplica(partition.id));
  }

  /** Takes the descriptors and schemas of the replicas here from a new map. */
  async noteMap(): Promise<void> {
    let changed = false;
    for (const id of this.#replicas.keys()) {
      const descriptor = this.#view.descriptorOf(id);
      if (descriptor !== undefined) changed = this.#remember(descriptor) || changed;
    }
    if (changed) await this.#save();
  }

  /** Carries out a split the parent's replica applies (PartitionReplica's `onSplit`). */
  async #split(parentId: number, split: PartitionSplit): Promise<SplitResult> {
    const host = this.#host;
    const parent = this.#known.get(parentId);
    const conf = host?.configuration(parentId);
    // Not a refusal (that would have to be the same on every replica): the node cannot go on.
    if (host === undefined || parent === undefined || conf === undefined) throw new Error(`partition ${parentId}: cannot split here (no host, descriptor or configuration)`);
    const left: PartitionDescriptor = { ...parent.descriptor, endKey: Uint8Array.from(split.splitKey), epoch: Math.max(parent.descriptor.epoch, split.epoch) };
    const splits = parent.splits.some((s) => s.index === split.index) ? parent.splits : [...parent.splits, { index: split.index, splitKey: Uint8Array.from(split.splitKey) }];
    this.#known.set(parentId, { ...parent, descriptor: left, splits });
    const right: PartitionDescriptor = this.#known.get(split.rightId)?.descriptor ?? {
      id: split.rightId,
      tableId: parent.descriptor.tableId,
      startKey: Uint8Array.from(split.splitKey),
      endKey: Uint8Array.from(split.parentEnd),
      epoch: split.epoch,
      replicas: [...conf.voters.map((nodeId) => ({ nodeId, role: 'voter' as const })), ...conf.learners.map((nodeId) => ({ nodeId, role: 'learner' as const }))].sort((a, b) => a.nodeId - b.nodeId),
    };
    if (!this.#known.has(split.rightId)) this.#known.set(split.rightId, { descriptor: right, table: parent.table, splits: [], bornOf: { parentId, index: split.index } });
    await this.#save();
    if (!host.hasGroup(split.rightId)) {
      if (!this.#replicas.has(split.rightId)) this.#replicas.set(split.rightId, await this.#openReplica(split.rightId));
      await host.openOrCreateGroup(split.rightId, conf.voters, conf.learners);
      // The parent's leader leads the right half at once: the writes routed to the parent go on to
      // it (a leaderless half would hold its keys' writes for an election timeout or two).
      if (host.leaderOf(parentId) === host.nodeId) host.campaign(split.rightId);
      this.#waitingForParent.delete(split.rightId);
      this.#log.info('partition split', { partition: parentId, right: split.rightId, index: split.index, epoch: split.epoch, voters: conf.voters });
    }
    return { status: 'split', left, right };
  }

  async drop(partitionId: number): Promise<void> {
    this.#replicas.delete(partitionId);
    await this.#dropData(partitionId);
    this.#known.delete(partitionId);
    await this.#save();
  }

  /** Waits for the file writes in flight. */
  async flush(): Promise<void> {
    await this.#saving;
  }

  #openReplica(partitionId: number): Promise<PartitionReplica> {
    return PartitionReplica.open(partitionId, this.#store.partitions, {
      boundOf: () => {
        const known = this.#known.get(partitionId);
        return known === undefined ? undefined : partitionBound(known.descriptor);
      },
      splitsOf: () => this.#known.get(partitionId)?.splits ?? [],
      onSplit: (split) => this.#split(partitionId, split),
      tableOf: () => this.#known.get(partitionId)?.table,
      onRestore: (restored) => this.#restored(partitionId, restored),
      onSettled: () => this.#settledListener?.(partitionId),
      onBackfillChunk: (chunk) => this.#backfillChunkListener?.(chunk),
      ...(this.#backfillChunk === undefined ? {} : { backfillChunk: this.#backfillChunk }),
    });
  }

  /**
   * A snapshot being installed brings the range and splits of the group at its applied index, which
   * replace those recorded here (they are replicated state, like the data the store takes next).
   */
  async #restored(partitionId: number, restored: RestoredPartition): Promise<void> {
    const known = this.#known.get(partitionId);
    const descriptor = known?.descriptor ?? this.#view.descriptorOf(partitionId);
    if (descriptor === undefined) throw new Error(`partition ${partitionId}: a snapshot arrived for a replica with no descriptor here`);
    this.#known.set(partitionId, {
      ...known,
      descriptor: { ...descriptor, startKey: Uint8Array.from(restored.bound.start), endKey: Uint8Array.from(restored.bound.end) },
      table: known?.table ?? restored.table,
      splits: restored.splits,
    });
    await this.#save();
  }

  async #dropData(partitionId: number): Promise<void> {
    const known = this.#known.get(partitionId);
    if (known?.table === undefined) {
      this.#log.warn('partition data left in the store: its table schema is unknown here', { partition: partitionId });
      return;
    }
    await this.#store.partitions.dropPartitionData(known.table, partitionBound(known.descriptor), partitionId);
  }

  /** Takes what the map says of a partition (its range only for a new replica); returns whether anything changed. */
  #remember(descriptor: PartitionDescriptor): boolean {
    const previous = this.#known.get(descriptor.id);
    const table = this.#view.tableOf(descriptor.tableId) ?? previous?.table;
    if (previous === undefined) {
      this.#known.set(descriptor.id, { descriptor, table, splits: [] });
      return true;
    }
    const newer = descriptor.epoch > previous.descriptor.epoch;
    if (!newer && JSON.stringify(previous.table) === JSON.stringify(table)) return false;
    const { startKey, endKey } = previous.descriptor;
    this.#known.set(descriptor.id, { ...previous, descriptor: newer ? { ...descriptor, startKey, endKey } : previous.descriptor, table });
    return true;
  }

  async #load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const file = JSON.parse(text) as KnownPartitionsFile;
    for (const { descriptor, table, splits, bornOf } of file.partitions) {
      this.#known.set(descriptor.id, {
        descriptor: { ...descriptor, startKey: fromBase64(descriptor.startKey), endKey: fromBase64(descriptor.endKey) },
        table,
        splits: (splits ?? []).map((s) => ({ index: s.index, splitKey: fromBase64(s.splitKey) })),
        ...(bornOf === undefined ? {} : { bornOf }),
      });
    }
  }

  /** Writes the file (a new one renamed over the old: never half written), after the writes before. */
  #save(): Promise<void> {
    const write = async (): Promise<void> => {
      const file: KnownPartitionsFile = {
        partitions: [...this.#known.values()].map(({ descriptor, table, splits, bornOf }) => ({
          descriptor: { ...descriptor, startKey: toBase64(descriptor.startKey), endKey: toBase64(descriptor.endKey) },
          ...(table === undefined ? {} : { table }),
          ...(splits.length === 0 ? {} : { splits: splits.map((s) => ({ index: s.index, splitKey: toBase64(s.splitKey) })) }),
          ...(bornOf === undefined ? {} : { bornOf }),
        })),
      };
      await writeFile(`${this.#path}.new`, JSON.stringify(file));
      await rename(`${this.#path}.new`, this.#path);
    };
    this.#saving = this.#saving.then(write, write);
    return this.#saving;
  }
}
