/**
 * The durable Raft log of a storage node: every Raft group the node hosts, in ONE LevelDB
 * (classic-level) database separate from the node's data database.
 *
 * Key layout (all numbers big-endian, so LevelDB's order is group, then kind, then index):
 *
 *   group(u64) 0x01              hard state          uvarint term, vote, commit
 *   group(u64) 0x02              log offset          uvarint index, term of the last removed entry
 *   group(u64) 0x03              snapshot metadata   uvarint index, term; conf state id lists; autoLeave
 *   group(u64) 0x04              snapshot data       the bytes the host gave, verbatim
 *   group(u64) 0x05 index(u64)   entry               type(1) uvarint term, data
 *
 * A group id is a non-negative safe integer (a JS number: ids stay far below 2^53 and numbers are
 * what @shoal/raft uses for ids). Retained entries are (offset.index, last]; every group has all
 * four singleton records from its creation, and the hard-state record is what lists it at open.
 *
 * Snapshots are stored as metadata plus the host's data bytes, not a reference to a file: for a
 * Shoal partition the state itself is the partition's key range in the data database, so the data
 * a host puts in a snapshot is expected to be a small descriptor (range, epoch, applied index) and
 * the key range is streamed from the data database. Keeping the bytes here keeps the snapshot and
 * the log offset in one atomic batch, with nothing to garbage-collect.
 *
 * Group commit: `persist` takes the updates of every group for one host tick. Each call applies its
 * updates in memory at once (so Storage reads see them) and joins the batch being formed; while one
 * batch is being written, later calls form the next, so a tick's appends, and any calls that arrive
 * during a write, share ONE LevelDB batch with ONE fsync. A call resolves only after its batch is
 * synced. A failed write leaves memory ahead of the disk, so the store stops: every later call
 * fails until it is reopened. A tick whose only change is commit indexes (not synced) is not written
 * on its own: its hard states join the next batch (or the one forming), so the disk always holds a
 * prefix of the calls, and a node under load saves a LevelDB write (a thread-pool round trip) per
 * commit notification.
 */
import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import {
  emptyConfState,
  SnapshotOutOfDateError,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
} from '@shoal/raft';
import {
  decodeEntryValue,
  decodeHardState,
  decodeKey,
  decodeLogOffset,
  decodeSnapshotMetadata,
  KIND_ENTRY,
  KIND_HARD_STATE,
  KIND_LOG_OFFSET,
  KIND_SNAPSHOT_DATA,
  KIND_SNAPSHOT_METADATA,
  plainBytes,
  RaftLogCorruptionError,
  type GroupId,
  type LogOffset,
} from './codec.ts';
import { GroupLog, type GroupLogStorage, type LogWrite } from './group-log.ts';

/** What one group's Ready asks to persist. */
export interface GroupPersist {
  groupId: GroupId;
  hardState?: HardState;
  /** May start at or below the last index: the conflicting suffix is replaced. */
  entries?: readonly Entry[];
  /** Applied before `entries`; replaces the whole log. */
  snapshot?: Snapshot;
}

/** A group found at open, enough for the host to restart its replica. */
export interface RecoveredGroup {
  groupId: GroupId;
  hardState: HardState;
  /**
   * The snapshot's membership. Conf changes after it are log entries: restart the RawNode with
   * `applied` at most the snapshot index and re-apply them (etcd's model).
   */
  confState: ConfState;
  snapshotIndex: number;
  firstIndex: number;
  lastIndex: number;
}

export interface NewGroup {
  hardState?: HardState;
  /** The membership of a group started at index 0 (like `new MemoryStorage(confState)`). */
  confState?: Partial<ConfState>;
  /** An initial snapshot (like `MemoryStorage.bootstrap`). */
  snapshot?: Snapshot;
}

export interface RaftLogStoreOptions {
  /**
   * Bytes of the newest entries each group keeps in memory (at least its last entry); older retained
   * entries are read from LevelDB synchronously. Default 1 MiB.
   */
  tailCacheBytes?: number;
  /**
   * TEST ONLY (fault injection): awaited before each batch is written; a throw fails the write as
   * the disk would (the store stops). See DiskFaults.
   */
  beforeWrite?: () => Promise<void>;
}

/** Upper bounds, in seconds, of the buckets of RaftLogStoreStats.syncSeconds. */
export const SYNC_SECONDS_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Counters for benchmarks and metrics. */
export interface RaftLogStoreStats {
  batches: number;
  syncedBatches: number;
  /**
   * How long synced batches took to write and fsync: `counts[i]` of them took at most
   * SYNC_SECONDS_BUCKETS[i] (more than the bound before), the last count the slower ones.
   */
  syncSeconds: { counts: number[]; sum: number };
}

interface FormingBatch {
  writes: LogWrite[];
  sync: boolean;
  groups: Set<GroupLog>;
  waiters: Array<{ resolve(): void; reject(error: unknown): void }>;
}

type Level = ClassicLevel<Uint8Array, Uint8Array>;

const ZERO_HARD_STATE: HardState = { term: 0, vote: 0, commit: 0 };

export class RaftLogStore {
  private readonly level: Level;
  private readonly tailCacheBytes: number;
  private readonly beforeWrite: (() => Promise<void>) | undefined;
  private readonly groups = new Map<GroupId, GroupLog>();
  private forming: FormingBatch | undefined;
  /** Commit-index-only hard states not written yet, the newest of each group: they join the next batch. */
  private readonly deferredHardStates = new Map<GroupId, LogWrite>();
  private writing = false;
  private idleWaiters: Array<() => void> = [];
  private failure: unknown;
  private closed = false;
  readonly stats: RaftLogStoreStats = { batches: 0, syncedBatches: 0, syncSeconds: { counts: SYNC_SECONDS_BUCKETS.map(() => 0).concat(0), sum: 0 } };

  private constructor(level: Level, options: RaftLogStoreOptions) {
    this.level = level;
    this.tailCacheBytes = options.tailCacheBytes ?? 1024 * 1024;
    this.beforeWrite = options.beforeWrite;
  }

  /** Opens (creating if needed) the database in `dir` and loads every group. */
  static async open(dir: string, options: RaftLogStoreOptions = {}): Promise<RaftLogStore> {
    await mkdir(dir, { recursive: true });
    const level: Level = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await level.open();
    const store = new RaftLogStore(level, options);
    try {
      await store.load();
    } catch (error) {
      await level.close();
      throw error;
    }
    return store;
  }

  private async load(): Promise<void> {
    const iterator = this.level.iterator();
    let records = new Map<number, Uint8Array>();
    let current: { id: GroupId; group?: GroupLog } | undefined;
    const finishRecords = (id: GroupId): GroupLog => {
      const value = (kind: number, name: string): Uint8Array => {
        const v = records.get(kind);
        if (v === undefined) throw new RaftLogCorruptionError(`group ${id} has no ${name}`);
        return v;
      };
      const group = this.newGroup(id, {
        hardState: decodeHardState(value(KIND_HARD_STATE, 'hard state')),
        offset: decodeLogOffset(value(KIND_LOG_OFFSET, 'log offset')),
        snapshot: {
          metadata: decodeSnapshotMetadata(value(KIND_SNAPSHOT_METADATA, 'snapshot metadata')),
          data: plainBytes(value(KIND_SNAPSHOT_DATA, 'snapshot data')),
        },
      });
      records = new Map();
      return group;
    };
    try {
      for (;;) {
        const batch = await iterator.nextv(1024);
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          const k = decodeKey(key);
          if (current !== undefined && current.id !== k.group) {
            if (current.group === undefined) finishRecords(current.id);
            current = undefined;
          }
          current ??= { id: k.group };
          if (k.kind === KIND_ENTRY) {
            current.group ??= finishRecords(k.group);
            current.group.loadEntry(decodeEntryValue(k.index, value));
          } else if (current.group !== undefined || k.kind > KIND_SNAPSHOT_DATA) {
            throw new RaftLogCorruptionError(`unexpected record kind ${k.kind} in group ${k.group}`);
          } else {
            records.set(k.kind, value);
          }
        }
      }
      if (current !== undefined && current.group === undefined) finishRecords(current.id);
    } finally {
      await iterator.close();
    }
  }

  private newGroup(id: GroupId, state: { hardState: HardState; snapshot: Snapshot; offset: LogOffset }): GroupLog {
    const group = new GroupLog(id, (key) => this.level.getSync(key), this.tailCacheBytes, state);
    this.groups.set(id, group);
    return group;
  }

  /** Every group in the store, by id. */
  listGroups(): RecoveredGroup[] {
    return [...this.groups.values()]
      .sort((a, b) => a.groupId - b.groupId)
      .map((g) => ({
        groupId: g.groupId,
        hardState: g.initialState().hardState,
        confState: g.snapshot().metadata.confState,
        snapshotIndex: g.snapshot().metadata.index,
        firstIndex: g.firstIndex(),
        lastIndex: g.lastIndex(),
      }));
  }

  hasGroup(id: GroupId): boolean {
    return this.groups.has(id);
  }

  /** The group's Storage, to hand to its RawNode. */
  group(id: GroupId): GroupLogStorage {
    return this.groupLog(id);
  }

  private groupLog(id: GroupId): GroupLog {
    const group = this.groups.get(id);
    if (group === undefined) throw new Error(`raft log store has no group ${id}`);
    return group;
  }

  /** Creates a group durably (synced). Its Storage is usable at once. */
  async createGroup(id: GroupId, init: NewGroup = {}): Promise<GroupLogStorage> {
    this.checkUsable();
    if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`invalid group id ${id}`);
    if (this.groups.has(id)) throw new Error(`raft log store already has group ${id}`);
    const snapshot = init.snapshot ?? {
      metadata: { index: 0, term: 0, confState: { ...emptyConfState(), ...init.confState } },
      data: new Uint8Array(0),
    };
    const group = this.newGroup(id, {
      hardState: init.hardState ?? ZERO_HARD_STATE,
      snapshot,
      offset: { index: snapshot.metadata.index, term: snapshot.metadata.term },
    });
    const writes: LogWrite[] = [];
    group.stageCreate(writes);
    await this.enqueue(writes, true, [group]);
    return group;
  }

  /**
   * An initial member of a new group, as `MemoryStorage.bootstrap`: the membership and the initial
   * state machine data in a snapshot at index 1, term 1. Every initial member is bootstrapped alike.
   */
  bootstrapGroup(id: GroupId, confState: Partial<ConfState>, data: Uint8Array): Promise<GroupLogStorage> {
    return this.createGroup(id, {
      snapshot: { metadata: { index: 1, term: 1, confState: { ...emptyConfState(), ...confState } }, data },
      hardState: { term: 1, vote: 0, commit: 1 },
    });
  }

  /**
   * Persists one tick's Readies of many groups in one batch, fsync'd unless `sync` is false (pass
   * false only when no Ready of the tick has `mustSync`: commit-index-only changes, which Raft
   * recovers from the log). Such a tick of hard states alone resolves at once and is written with the
   * next batch (the forming one, if any; at the latest by close()): losing it in a crash, as an
   * unsynced write may be lost anyway, only has the node learn its commit index again.
   * Throws, changing nothing, when an update cannot apply (unknown group, out-of-date snapshot, a
   * gap before its entries).
   */
  persist(updates: readonly GroupPersist[], options: { sync?: boolean } = {}): Promise<void> {
    try {
      this.checkUsable();
      this.validate(updates);
    } catch (error) {
      return Promise.reject(error);
    }
    const writes: LogWrite[] = [];
    const touched: GroupLog[] = [];
    for (const u of updates) {
      const group = this.groupLog(u.groupId);
      if (u.snapshot !== undefined) group.stageSnapshot(u.snapshot, writes);
      if (u.entries !== undefined) group.stageEntries(u.entries, writes);
      if (u.hardState !== undefined) group.stageHardState(u.hardState, writes);
      touched.push(group);
    }
    if (writes.length === 0) return Promise.resolve();
    const sync = options.sync ?? true;
    if (!sync && updates.every((u) => u.snapshot === undefined && (u.entries === undefined || u.entries.length === 0))) {
      this.defer(updates, writes);
      return Promise.resolve();
    }
    return this.enqueue(writes, sync, touched);
  }

  /** Holds hard-state writes (one per update, in order) for the next batch; one forming takes them now. */
  private defer(updates: readonly GroupPersist[], writes: readonly LogWrite[]): void {
    // enqueue() empties the deferred ones into the batch it forms: none are left while one forms.
    if (this.forming !== undefined) {
      for (const w of writes) this.forming.writes.push(w);
      return;
    }
    // Each update with a hard state staged one write, in order.
    const groups = updates.filter((u) => u.hardState !== undefined).map((u) => u.groupId);
    groups.forEach((groupId, k) => {
      // Re-inserted, so the map keeps the calls' order (the newest state of a group last).
      this.deferredHardStates.delete(groupId);
      this.deferredHardStates.set(groupId, writes[k]);
    });
  }

  private validate(updates: readonly GroupPersist[]): void {
    const planned = new Map<GroupId, { snapshotIndex: number; offset: number; last: number }>();
    for (const u of updates) {
      const group = this.group(u.groupId);
      const plan = planned.get(u.groupId) ?? {
        snapshotIndex: group.snapshot().metadata.index,
        offset: group.firstIndex() - 1,
        last: group.lastIndex(),
      };
      if (u.snapshot !== undefined) {
        const index = u.snapshot.metadata.index;
        if (index <= plan.snapshotIndex) throw new SnapshotOutOfDateError();
        plan.snapshotIndex = plan.offset = plan.last = index;
      }
      const entries = u.entries ?? [];
      if (entries.length > 0) {
        const first = entries[0].index;
        const last = first + entries.length - 1;
        if (last > plan.offset) {
          const at = Math.max(first, plan.offset + 1);
          if (at > plan.last + 1) throw new Error(`missing log entry [last: ${plan.last}, append at: ${at}] in group ${u.groupId}`);
          plan.last = last;
        }
      }
      planned.set(u.groupId, plan);
    }
  }

  /**
   * Records a snapshot of the group's state machine at applied index `index`, for Raft to send to
   * lagging followers. Not synced by itself: it is needed only once the log is compacted past it,
   * and LevelDB keeps writes in order.
   */
  async createSnapshot(id: GroupId, index: number, confState: ConfState | undefined, data: Uint8Array): Promise<Snapshot> {
    this.checkUsable();
    const group = this.groupLog(id);
    const writes: LogWrite[] = [];
    const snapshot = group.stageCreateSnapshot(index, confState, data, writes);
    await this.enqueue(writes, false, [group]);
    return snapshot;
  }

  /**
   * Drops entries up to and including `index`, after a snapshot covers them. Not synced: losing a
   * compaction in a crash only keeps entries longer. The host must not compact past what its data
   * database holds durably, since the log is what replays unsynced applied state.
   */
  async compact(id: GroupId, index: number): Promise<void> {
    this.checkUsable();
    const group = this.groupLog(id);
    const writes: LogWrite[] = [];
    group.stageCompact(index, writes);
    await this.enqueue(writes, false, [group]);
  }

  /**
   * Deletes a group (its replica moved away). Synced, so a removed replica cannot come back after a
   * restart and campaign with an old configuration.
   */
  async removeGroup(id: GroupId): Promise<void> {
    this.checkUsable();
    const group = this.groupLog(id);
    const writes: LogWrite[] = [];
    group.stageRemove(writes);
    this.groups.delete(id);
    await this.enqueue(writes, true, [group]);
  }

  /** Waits for batches in flight, then closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deferredHardStates.size > 0 && this.failure === undefined) await this.enqueue([], false, []).catch(() => undefined);
    if (this.writing) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.level.close();
  }

  private checkUsable(): void {
    if (this.closed) throw new Error('raft log store is closed');
    if (this.failure !== undefined) throw new Error(`raft log store stopped after a failed write: ${String(this.failure)}`);
  }

  private enqueue(writes: LogWrite[], sync: boolean, groups: readonly GroupLog[]): Promise<void> {
    const batch = (this.forming ??= { writes: [], sync: false, groups: new Set(), waiters: [] });
    // Deferred hard states were staged before these writes: they go first.
    for (const w of this.deferredHardStates.values()) batch.writes.push(w);
    this.deferredHardStates.clear();
    for (const w of writes) batch.writes.push(w);
    batch.sync ||= sync;
    for (const g of groups) {
      if (!batch.groups.has(g)) {
        batch.groups.add(g);
        g.writeStarted();
      }
    }
    const done = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    if (!this.writing) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.forming !== undefined) {
      const batch = this.forming;
      this.forming = undefined;
      const started = performance.now();
      try {
        if (this.beforeWrite !== undefined) await this.beforeWrite();
        await this.level.batch(batch.writes, { sync: batch.sync });
      } catch (error) {
        this.failure = error;
        for (const w of batch.waiters) w.reject(error);
        const queued = this.forming as FormingBatch | undefined;
        for (const w of queued?.waiters ?? []) w.reject(error);
        this.forming = undefined;
        break;
      }
      this.stats.batches++;
      if (batch.sync) {
        this.stats.syncedBatches++;
        const seconds = (performance.now() - started) / 1000;
        const bucket = SYNC_SECONDS_BUCKETS.findIndex((bound) => seconds <= bound);
        this.stats.syncSeconds.counts[bucket === -1 ? SYNC_SECONDS_BUCKETS.length : bucket]++;
        this.stats.syncSeconds.sum += seconds;
      }
      for (const g of batch.groups) g.writeDone();
      for (const w of batch.waiters) w.resolve();
    }
    this.writing = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
