/**
 * The index shipper of a storage node (asynchronous GSIs; the outbox itself: @shoal/storage
 * index-outbox.ts). For every base partition group this node leads, it reads the group's outbox in
 * seq order (bounded batches), routes each record by its entry key to the GSI partition owning it (the
 * node's map view, corrected by the descriptors routing errors carry), sends each GSI partition its
 * records in seq order in ONE ApplyIndexEntries call to that partition's leader (following NotLeader
 * hints). Once every record of a batch is acknowledged the next batch is read after it, and the
 * acknowledged records are trimmed by a `trimIndexOutbox` command of the group's own log once 512 of
 * them wait or at the next pass (500 ms), not after every batch: a trim is a Raft entry, and at a
 * low write rate every batch is one write's records (a departure from the design's trim after every
 * acknowledgement, for the log's sake; the acknowledged records stay until then, and a new leader
 * sends them again, skipped). A failed or refused send is retried with a bounded backoff (50 ms
 * doubling to 2 s); the records stay in the outbox meanwhile. A new leader (failover, restart) starts
 * from the first record left: that is the catch-up. GSI partitions skip what they applied before
 * (their cursor per source group), so sending a batch again is harmless.
 *
 * Order: a batch is shipped only up to its first record that cannot be routed yet (its index or its
 * partition is not in the view: a map behind the write that made it), so no target ever receives a
 * record after a later one of the same source: its cursor would skip the earlier one.
 *
 * Records of an index the view does not know (DeletedIndexes): an index this node's view showed
 * before was deleted (a map only grows newer, and space ids are never reused): dropped at once; so is
 * one whose creation map version a backfill record here holds (its backfill command carried it) once
 * the view is at or past that version, and until then its records are held, with no presumption.
 * Otherwise (no version known: a GSI created with its table, or by an older router) the write was
 * made with a schema the router knew and the map normally reaches this node within a heartbeat: held
 * until the index has been unknown for `unknownIndexGraceMs` (30 s) over at least one newer map, then
 * dropped as the records of a GSI deleted meanwhile (whose partitions went with it). A map view
 * frozen that long (meta unreachable) drops nothing.
 *
 * Splits of the source (a base partition): its records of the right half move to the right group's
 * outbox (under their own seqs, which the split reserved there) by `moveIndexOutbox` entries of the
 * group, bounded steps which the shipper of its leader proposes one after another before it ships
 * anything more of the group (its outbox holds the right half's records until they moved). The right
 * group, and any half split from it since, ships nothing while records may still be moved into its
 * outbox on this node (PartitionStore.awaitsIndexOutboxMove): its newer records of an item never go
 * before older ones still to come. A batch read before a split this node has applied since is not sent
 * (the split count is checked before every call), as its right-half records are the right group's now.
 * A call already on the wire when the split applies (or retried after it) could still arrive after the
 * right half shipped newer records of the same items: every call of a split half carries fences (its
 * ancestors, each with the half's start key), which the GSI partition keeps, skipping from then on any
 * ancestor record of an item at or beyond its fence. A half whose ancestry this node does not remember
 * (a replica created from a snapshot, not by a split here) sends fewer fences.
 */
import { ErrorDetailSchema, PartitionService, RpcError, applyIndexEntriesRequestToWire, ClientPool, partitionDescriptorFromWire } from '@shoal/proto';
import { PartitionMap, type PartitionDescriptor } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import type { IndexOutboxRecord, OutboxMoveLimits, PartitionStore } from '@shoal/storage';
import type { MultiRaftHost } from '../host/index.ts';
import { proposeIndexOutboxMove, proposeIndexOutboxTrim } from '../partition/index.ts';
import { DeletedIndexes } from '../partition/deleted-indexes.ts';
import { PeriodicPass } from '../partition/periodic-pass.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';

export interface IndexShipperLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface IndexShipperOptions {
  store: PartitionStore;
  host: Pick<MultiRaftHost, 'nodeId' | 'leaderOf' | 'propose'>;
  view: ClusterView;
  /** The partition groups this node leads now (the meta group left out). */
  ledGroups(): number[];
  /** How many splits a group applied here (a batch read before one is not sent). */
  splitCount(groupId: number): number;
  /** The partitions a split half was split from (nearest first), with the key its items start at: the fences its calls carry. */
  ancestorsOf(groupId: number): Array<{ partitionId: number; fromKey: Uint8Array }>;
  /** A node's gRPC address (the view's, the meta peers', the address book's). */
  nodeAddress(nodeId: NodeId): string | undefined;
  /** Between passes over every group led here (default 500 ms). */
  intervalMs?: number;
  /** A batch: at most this many records (default 1,000) and about this many bytes (default 1 MiB). */
  maxBatchRecords?: number;
  maxBatchBytes?: number;
  unknownIndexGraceMs?: number;
  /** How much one step of a split's outbox move carries (the store's default: 1,000 records or 1 MiB). */
  outboxMoveStep?: OutboxMoveLimits;
  callTimeoutMs?: number;
  now?(): number;
  log?: IndexShipperLog;
}

/** Counters for metrics and tests. */
export interface IndexShipperStats {
  /** Records every target acknowledged (and then trimmed), dropped records included. */
  recordsShipped: number;
  /** ApplyIndexEntries calls answered, and those that failed (retried). */
  callsSucceeded: number;
  callsFailed: number;
  /** Records of indexes the view no longer knows, dropped. */
  recordsDropped: number;
  /** Batches held back at a record not routable yet (its index or its partition not in the view). */
  batchesHeld: number;
  /** Outbox records of the groups led here at the last pass (shipped ones too, until trimmed; moved ones counted in the half holding them). */
  outboxRecords: number;
  /** Outbox move steps (a split's right-half records) proposed and applied, the records they moved, and the moves they ended. */
  outboxMoveSteps: number;
  outboxRecordsMoved: number;
  outboxMovesEnded: number;
}

const DEFAULT_INTERVAL_MS = 500;
const DEFAULT_MAX_RECORDS = 1_000;
const DEFAULT_MAX_BYTES = 1024 * 1024;
const DEFAULT_CALL_TIMEOUT_MS = 5_000;
const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;
/** Nodes asked per target and batch: its leader hint, its voters, and the leaders they name. */
const CALL_ATTEMPTS = 5;
/** Batches one run ships before it yields to the other groups (the next pass goes on). */
const BATCHES_PER_RUN = 64;
const HELD_LOG_INTERVAL_MS = 10_000;
/** Acknowledged records that make a trim at once (else the next pass trims them). */
const TRIM_EVERY_RECORDS = 512;

interface GroupShipping {
  running: boolean;
  /** Woken while running: run again at once after. */
  again: boolean;
  backoffMs: number;
  /** No run before this (epoch ms) after a failure. */
  retryAt: number;
  /** The last seq every target acknowledged, and the last one trimmed, while this node leads the group (0: none). */
  acknowledged: number;
  trimmed: number;
}

export class IndexShipper {
  readonly stats: IndexShipperStats = { recordsShipped: 0, callsSucceeded: 0, callsFailed: 0, recordsDropped: 0, batchesHeld: 0, outboxRecords: 0, outboxMoveSteps: 0, outboxRecordsMoved: 0, outboxMovesEnded: 0 };
  /** When a held batch was last logged, by group (at most one line per group every HELD_LOG_INTERVAL_MS). */
  readonly #heldLogged = new Map<number, number>();
  readonly #options: IndexShipperOptions;
  readonly #groups = new Map<number, GroupShipping>();
  readonly #clients = new ClientPool(PartitionService);
  /** The last leader each GSI partition's calls found. */
  readonly #leaders = new Map<number, NodeId>();
  /** The view's partitions, with the newer descriptors routing errors brought since. */
  #map = new PartitionMap();
  #mapVersion = -1;
  readonly #newer: PartitionDescriptor[] = [];
  /** Which indexes records name that the view does not show were deleted. */
  readonly #indexes: DeletedIndexes;
  /** Creation map versions of GSIs the view did not show, from the store's backfill records (never change once known). */
  readonly #createdAt = new Map<number, number>();
  /**
   * GSIs whose creation version the store's backfill records did not hold, with the store's
   * `backfillsStarted` when asked: asked again only once it moves (a backfill command, a split, a
   * snapshot: the only writes that can bring a version; a chunk or a drop keeps the record's). Not
   * the map version: a version recorded without a newer map would be missed, and the 30 s
   * presumption, which needs no newer map after the lookup, would drop a live GSI's records.
   */
  readonly #noVersion = new Map<number, number>();
  readonly #runs = new Set<Promise<void>>();
  readonly #pass: PeriodicPass<void>;

  constructor(options: IndexShipperOptions) {
    this.#options = options;
    this.#indexes = new DeletedIndexes({
      view: options.view,
      ...(options.unknownIndexGraceMs === undefined ? {} : { graceMs: options.unknownIndexGraceMs }),
      now: () => this.#now(),
    });
    this.#pass = new PeriodicPass(() => this.#passOnce(), {
      intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS,
      onError: (error) => options.log?.warn('an index shipping pass failed', { error: String(error) }),
    });
  }

  get #closed(): boolean {
    return this.#pass.closed;
  }

  start(): void {
    this.#pass.start();
  }

  async close(): Promise<void> {
    await this.#pass.close();
    await Promise.allSettled([...this.#runs]);
    this.#clients.close();
  }

  /** A group's applied writes are in the store: ships its new records now when this node leads it. */
  wake(groupId: number): void {
    if (this.#closed || this.#options.host.leaderOf(groupId) !== this.#options.host.nodeId) return;
    const state = this.#group(groupId);
    if (state.retryAt > this.#now()) return;
    this.#run(groupId);
  }

  /** One pass over the groups led here (joined when one runs): ships what waits, counts the outboxes. */
  pass(): Promise<void> {
    return this.#pass.run();
  }

  /** Resolves once no group is being shipped (tests). */
  async idle(): Promise<void> {
    while (this.#runs.size > 0) await Promise.allSettled([...this.#runs]);
  }

  async #passOnce(): Promise<void> {
    const led = this.#options.ledGroups();
    // A group led no more starts over (from the first record left) if it is led here again.
    for (const id of this.#groups.keys()) if (!led.includes(id)) this.#groups.delete(id);
    let pending = 0;
    for (const groupId of led) {
      if (this.#closed) return;
      const state = this.#group(groupId);
      if (state.acknowledged > state.trimmed && !state.running) await this.#trim(groupId, state);
      const held = this.#options.store.indexOutboxBacklog(groupId);
      pending += held;
      const unshipped = held === 0 ? 0 : await this.#options.store.indexOutboxSize(groupId, state.acknowledged > 0 ? state.acknowledged : undefined);
      // A split's outbox move is recorded even when nothing is left to move (a step ends it).
      const moving = unshipped === 0 && (await this.#options.store.indexOutboxMove(groupId)) !== undefined;
      if ((unshipped > 0 || moving) && state.retryAt <= this.#now()) this.#run(groupId);
    }
    this.stats.outboxRecords = pending;
  }

  #group(groupId: number): GroupShipping {
    let state = this.#groups.get(groupId);
    if (state === undefined) {
      state = { running: false, again: false, backoffMs: MIN_BACKOFF_MS, retryAt: 0, acknowledged: 0, trimmed: 0 };
      this.#groups.set(groupId, state);
    }
    return state;
  }

  #run(groupId: number): void {
    const state = this.#group(groupId);
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    const run = this.#ship(groupId, state)
      .catch((error: unknown) => {
        this.#failed(state);
        this.#options.log?.warn('shipping index records failed', { partition: groupId, error: String(error) });
      })
      .finally(() => {
        state.running = false;
        this.#runs.delete(run);
        if (state.again && !this.#closed) {
          state.again = false;
          if (state.retryAt <= this.#now()) this.#run(groupId);
        }
      });
    this.#runs.add(run);
  }

  async #ship(groupId: number, state: GroupShipping): Promise<void> {
    const { store, host } = this.#options;
    for (let batches = 0; batches < BATCHES_PER_RUN && !this.#closed; batches++) {
      if (host.leaderOf(groupId) !== host.nodeId) return;
      const move = await store.indexOutboxMove(groupId);
      const next = move && (await store.nextIndexOutboxMoveStep(groupId, this.#options.outboxMoveStep));
      if (move !== undefined && next !== undefined) {
        const step = await proposeIndexOutboxMove(host, groupId, next);
        this.stats.outboxMoveSteps += 1;
        this.stats.outboxRecordsMoved += step.moved;
        if (step.status === 'done') {
          this.stats.outboxMovesEnded += 1;
          // Its right half (led here too, most often: its parent's leader campaigns for it) may ship now.
          this.wake(move.rightGroupId);
        }
        continue;
      }
      // Records may still be moved in here: the next pass looks again.
      if (await store.awaitsIndexOutboxMove(groupId)) return;
      const splits = this.#options.splitCount(groupId);
      const batch = await store.readIndexOutbox(groupId, {
        ...(state.acknowledged > 0 ? { afterSeq: state.acknowledged } : {}),
        maxRecords: this.#options.maxBatchRecords ?? DEFAULT_MAX_RECORDS,
        maxBytes: this.#options.maxBatchBytes ?? DEFAULT_MAX_BYTES,
      });
      if (batch.length === 0) return;
      const through = await this.#shipBatch(groupId, batch, splits);
      if (through === undefined) {
        this.#failed(state);
        return;
      }
      state.acknowledged = through.seq;
      this.stats.recordsShipped += through.count;
      state.backoffMs = MIN_BACKOFF_MS;
      state.retryAt = 0;
      if (state.acknowledged - state.trimmed >= TRIM_EVERY_RECORDS) await this.#trim(groupId, state);
      // A batch held back part way (a record not routable yet) waits for the next try.
      if (through.count < batch.length) {
        this.#failed(state);
        return;
      }
    }
    // More left: the next pass (or wake) goes on.
  }

  /** Proposes trimming what every target acknowledged (a lost leadership: the next leader sends it again, skipped). */
  async #trim(groupId: number, state: GroupShipping): Promise<void> {
    const through = state.acknowledged;
    try {
      await proposeIndexOutboxTrim(this.#options.host, groupId, through);
      state.trimmed = Math.max(state.trimmed, through);
    } catch (error) {
      this.#options.log?.warn('trimming an index outbox failed', { partition: groupId, through, error: String(error) });
    }
  }

  #failed(state: GroupShipping): void {
    state.retryAt = this.#now() + state.backoffMs;
    state.backoffMs = Math.min(MAX_BACKOFF_MS, state.backoffMs * 2);
  }

  /**
   * Ships the batch's routable prefix; answers the last seq every target acknowledged and how many
   * records that covers, or undefined when nothing could be shipped.
   */
  async #shipBatch(groupId: number, batch: IndexOutboxRecord[], splits: number): Promise<{ seq: number; count: number } | undefined> {
    this.#refreshMap();
    await this.#learnCreationVersions(batch);
    const targets = new Map<number, { partition: PartitionDescriptor; records: IndexOutboxRecord[] }>();
    let count = 0;
    for (const record of batch) {
      const routed = this.#route(record);
      if (routed === 'hold') {
        this.#held(groupId, record);
        break;
      }
      count += 1;
      if (routed === 'drop') {
        this.stats.recordsDropped += 1;
        continue;
      }
      const target = targets.get(routed.id) ?? { partition: routed, records: [] };
      target.records.push(record);
      targets.set(routed.id, target);
    }
    if (count === 0) return undefined;
    const sent = await Promise.all([...targets.values()].map(({ partition, records }) => this.#send(groupId, partition, records, splits)));
    if (!sent.every(Boolean)) return undefined;
    return { seq: batch[count - 1].seq, count };
  }

  /** Counts a batch held at `record`, and says why in the log (every group's shipping waits behind it). */
  #held(groupId: number, record: IndexOutboxRecord): void {
    this.stats.batchesHeld += 1;
    const now = this.#now();
    if (now - (this.#heldLogged.get(groupId) ?? -Infinity) < HELD_LOG_INTERVAL_MS) return;
    this.#heldLogged.set(groupId, now);
    const why = this.#options.view.gsiOf(record.indexId) === undefined ? 'its index is not in the map yet' : 'no partition of its index owns its key in the map yet';
    this.#options.log?.warn('index records held back: the group ships nothing after them until they can be routed', { partition: groupId, seq: record.seq, index: record.indexId, why });
  }

  /** Looks up, in the store's backfill records, the creation map version of each GSI of the batch the view does not show. */
  async #learnCreationVersions(batch: readonly IndexOutboxRecord[]): Promise<void> {
    const { store, view } = this.#options;
    // Read before the lookups: a backfill record written during one moves it past what is noted here.
    const started = store.backfillsStarted;
    for (const [indexId, at] of this.#noVersion) if (at !== started) this.#noVersion.delete(indexId);
    for (const { indexId } of batch) {
      if (this.#noVersion.get(indexId) === started || this.#createdAt.has(indexId) || view.gsiOf(indexId) !== undefined) continue;
      const version = await store.indexCreatedAtMapVersion(indexId);
      if (version === undefined) this.#noVersion.set(indexId, started);
      else this.#createdAt.set(indexId, version);
    }
  }

  /** The GSI partition a record goes to, or whether to hold (not routable yet) or drop it (its index is gone). */
  #route(record: IndexOutboxRecord): PartitionDescriptor | 'hold' | 'drop' {
    const status = this.#indexes.status(record.indexId, this.#createdAt.get(record.indexId));
    if (status !== 'shown') return status === 'unknown' ? 'hold' : 'drop';
    return this.#map.lookup(record.entryKey) ?? 'hold';
  }

  #refreshMap(): void {
    const { view } = this.#options;
    if (view.version === this.#mapVersion) return;
    this.#mapVersion = view.version;
    this.#map = new PartitionMap(view.partitions());
    // Descriptors errors brought that the new map still lacks stay (an older one is ignored).
    for (const descriptor of this.#newer.splice(0)) if (this.#map.update(descriptor)) this.#newer.push(descriptor);
  }

  #learn(descriptor: PartitionDescriptor): void {
    if (this.#map.update(descriptor)) this.#newer.push(descriptor);
  }

  /**
   * One ApplyIndexEntries call to the target's leader (its hint first, then its voters, following
   * NotLeader answers). A routing error brings the target's current descriptor: false, the batch is
   * routed again at the next try. So is any other failure.
   */
  async #send(groupId: number, partition: PartitionDescriptor, records: IndexOutboxRecord[], splits: number): Promise<boolean> {
    const { host, view } = this.#options;
    const voters = partition.replicas.filter((replica) => replica.role === 'voter').map((replica) => replica.nodeId);
    const hint = this.#leaders.get(partition.id) ?? partition.leaderHint;
    const candidates = [...new Set([...(hint === undefined ? [] : [hint]), ...voters])];
    const fences = this.#options.ancestorsOf(groupId).map((ancestor) => ({ sourcePartitionId: ancestor.partitionId, fromKey: ancestor.fromKey }));
    const request = applyIndexEntriesRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { sourcePartitionId: groupId, records, fences });
    for (let attempt = 0; attempt < CALL_ATTEMPTS && candidates.length > 0 && !this.#closed; attempt++) {
      // Checked before every call: a source split since the batch was read moved part of it away.
      if (this.#options.splitCount(groupId) !== splits || host.leaderOf(groupId) !== host.nodeId) return false;
      const nodeId = candidates.shift() as NodeId;
      const address = this.#options.nodeAddress(nodeId) ?? view.nodeAddress(nodeId);
      if (address === undefined) continue;
      try {
        await this.#clients.get(address).applyIndexEntries(request, { timeoutMs: this.#options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS });
        this.#leaders.set(partition.id, nodeId);
        this.stats.callsSucceeded += 1;
        return true;
      } catch (error) {
        this.stats.callsFailed += 1;
        const detail = error instanceof RpcError ? error.detail(ErrorDetailSchema)?.kind : undefined;
        if (detail?.case === 'notLeader' && detail.value.leader !== undefined) {
          const leader = Number(detail.value.leader.id);
          this.#leaders.set(partition.id, leader);
          candidates.unshift(leader);
          continue;
        }
        if ((detail?.case === 'staleEpoch' || detail?.case === 'keyOutOfRange') && detail.value.current !== undefined) {
          this.#learn(partitionDescriptorFromWire(detail.value.current));
          return false;
        }
        // Throttled by the GSI partition's admission control: the records wait out the backoff.
        if (detail?.case === 'dynamodb') return false;
      }
    }
    return false;
  }


  #now(): number {
    return (this.#options.now ?? Date.now)();
  }
}
