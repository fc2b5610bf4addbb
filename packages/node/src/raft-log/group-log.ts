/**
 * One Raft group's log as @shoal/raft's synchronous `Storage`, kept by a RaftLogStore.
 *
 * Served from memory: the hard state, the snapshot (metadata and data), the term of every retained
 * entry (run-length encoded: a few numbers per term, not per entry) and a byte-bounded cache of the
 * newest entries. Older retained entries are read from LevelDB with `getSync`; only a lagging
 * follower's catch-up or a lagging apply reaches them, and compaction after each snapshot bounds how
 * many there are. Staged changes are visible at once (as etcd's MemoryStorage after Append); the
 * cache drops entries only once no write of this group is in flight, so whatever `getSync` must find
 * is already in LevelDB.
 */
import {
  CompactedError,
  SnapshotOutOfDateError,
  UnavailableError,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  type Storage,
} from '@shoal/raft';
import {
  decodeEntryValue,
  encodeEntryValue,
  encodeHardState,
  encodeLogOffset,
  encodeSnapshotMetadata,
  entryKey,
  KIND_HARD_STATE,
  KIND_LOG_OFFSET,
  KIND_SNAPSHOT_DATA,
  KIND_SNAPSHOT_METADATA,
  RaftLogCorruptionError,
  recordKey,
  type GroupId,
  type LogOffset,
} from './codec.ts';

/** One operation of a LevelDB batch. */
export type LogWrite = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** Reads one key of the Raft-log database synchronously. */
export type ReadSync = (key: Uint8Array) => Uint8Array | undefined;

/** The size @shoal/raft's size limits count for an entry (its `entrySize`). */
function entrySize(entry: Entry): number {
  return entry.data.byteLength + 24;
}

/** What a host sees of one group's log: the Storage to hand to its RawNode. */
export interface GroupLogStorage extends Storage {
  readonly groupId: GroupId;
}

/** A group's log with the changes RaftLogStore stages into it (not for hosts). */
export class GroupLog implements GroupLogStorage {
  readonly groupId: GroupId;
  private readonly readSync: ReadSync;
  private readonly tailCacheBytes: number;
  private hardState: HardState;
  private snap: Snapshot;
  /** The last entry removed from the log; retained entries are (offset.index, last]. */
  private offset: LogOffset;
  private last: number;
  /** Term runs over the retained entries: runTerms[k] from index runStarts[k] on. */
  private runStarts: number[] = [];
  private runTerms: number[] = [];
  /** Entries [cacheStart, last]. */
  private cache: Entry[] = [];
  private cacheStart: number;
  private cacheBytes = 0;
  /** Batches holding changes of this group not yet written. */
  private writesInFlight = 0;

  constructor(
    groupId: GroupId,
    readSync: ReadSync,
    tailCacheBytes: number,
    state: { hardState: HardState; snapshot: Snapshot; offset: LogOffset },
  ) {
    this.groupId = groupId;
    this.readSync = readSync;
    this.tailCacheBytes = tailCacheBytes;
    this.hardState = { ...state.hardState };
    this.snap = state.snapshot;
    this.offset = { ...state.offset };
    this.last = state.offset.index;
    this.cacheStart = this.last + 1;
  }

  // --- Storage ---

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.offset.index) throw new CompactedError();
    if (hi > this.last + 1) throw new Error(`entries' hi(${hi}) is out of bound lastindex(${this.last})`);
    if (this.last === this.offset.index) throw new UnavailableError();
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const entry = i >= this.cacheStart ? this.cache[i - this.cacheStart] : this.readEntry(i);
      size += entrySize(entry);
      if (out.length > 0 && size > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  term(i: number): number {
    if (i < this.offset.index) throw new CompactedError();
    if (i > this.last) throw new UnavailableError();
    if (i === this.offset.index) return this.offset.term;
    let lo = 0;
    let hi = this.runStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.runStarts[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return this.runTerms[lo];
  }

  firstIndex(): number {
    return this.offset.index + 1;
  }

  lastIndex(): number {
    return this.last;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  private readEntry(index: number): Entry {
    const value = this.readSync(entryKey(this.groupId, index));
    if (value === undefined) throw new RaftLogCorruptionError(`group ${this.groupId} lacks entry ${index}`);
    return decodeEntryValue(index, value);
  }

  // --- Changes, staged by RaftLogStore: memory at once, LevelDB operations into `out`. ---

  /** Loads a durable entry at open (the next index). */
  loadEntry(entry: Entry): void {
    if (entry.index !== this.last + 1) {
      throw new RaftLogCorruptionError(`group ${this.groupId} has entry ${entry.index} after ${this.last}`);
    }
    this.pushEntry(entry);
    this.evict();
  }

  stageHardState(hardState: HardState, out: LogWrite[]): void {
    this.hardState = { ...hardState };
    out.push({ type: 'put', key: recordKey(this.groupId, KIND_HARD_STATE), value: encodeHardState(hardState) });
  }

  /** Replaces the whole log with `snap` (a follower receiving one). */
  stageSnapshot(snap: Snapshot, out: LogWrite[]): void {
    if (snap.metadata.index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    this.deleteEntries(this.offset.index + 1, this.last, out);
    this.snap = snap;
    this.putSnapshot(out);
    this.setOffset({ index: snap.metadata.index, term: snap.metadata.term }, out);
    this.last = snap.metadata.index;
    this.runStarts = [];
    this.runTerms = [];
    this.dropCache();
  }

  /** Appends entries, replacing any suffix they overlap and skipping compacted ones. */
  stageEntries(entries: readonly Entry[], out: LogWrite[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    if (entries[0].index + entries.length - 1 < first) return;
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const at = entries[0].index;
    if (at > this.last + 1) throw new Error(`missing log entry [last: ${this.last}, append at: ${at}]`);
    const newLast = at + entries.length - 1;
    this.deleteEntries(newLast + 1, this.last, out);
    if (at <= this.last) this.truncateFrom(at);
    for (const entry of entries) {
      this.pushEntry(entry);
      out.push({ type: 'put', key: entryKey(this.groupId, entry.index), value: encodeEntryValue(entry) });
    }
  }

  /** Records a snapshot of the state machine at applied index `index` (compact afterwards). */
  stageCreateSnapshot(index: number, confState: ConfState | undefined, data: Uint8Array, out: LogWrite[]): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    if (index > this.last) throw new Error(`snapshot ${index} is out of bound lastindex(${this.last})`);
    this.snap = { metadata: { index, term: this.term(index), confState: confState ?? this.snap.metadata.confState }, data };
    this.putSnapshot(out);
    return this.snap;
  }

  /** Discards entries up to and including `index`. */
  stageCompact(index: number, out: LogWrite[]): void {
    if (index <= this.offset.index) throw new CompactedError();
    if (index > this.last) throw new Error(`compact ${index} is out of bound lastindex(${this.last})`);
    const term = this.term(index);
    this.deleteEntries(this.offset.index + 1, index, out);
    this.setOffset({ index, term }, out);
    if (index === this.last) {
      this.runStarts = [];
      this.runTerms = [];
    } else {
      let k = 0;
      while (k + 1 < this.runStarts.length && this.runStarts[k + 1] <= index + 1) k++;
      this.runStarts = this.runStarts.slice(k);
      this.runTerms = this.runTerms.slice(k);
      this.runStarts[0] = index + 1;
    }
    if (this.cacheStart <= index) {
      const drop = Math.min(index + 1 - this.cacheStart, this.cache.length);
      for (let k = 0; k < drop; k++) this.cacheBytes -= entrySize(this.cache[k]);
      this.cache.splice(0, drop);
    }
    this.cacheStart = Math.max(this.cacheStart, index + 1);
  }

  /** Every key of the group: its hard state, offset, snapshot and entries. */
  stageRemove(out: LogWrite[]): void {
    for (const kind of [KIND_HARD_STATE, KIND_LOG_OFFSET, KIND_SNAPSHOT_METADATA, KIND_SNAPSHOT_DATA]) {
      out.push({ type: 'del', key: recordKey(this.groupId, kind) });
    }
    this.deleteEntries(this.offset.index + 1, this.last, out);
  }

  /** Every record of a new group (entries aside). */
  stageCreate(out: LogWrite[]): void {
    this.stageHardState(this.hardState, out);
    this.putSnapshot(out);
    this.setOffset(this.offset, out);
  }

  writeStarted(): void {
    this.writesInFlight++;
  }

  writeDone(): void {
    this.writesInFlight--;
    this.evict();
  }

  private putSnapshot(out: LogWrite[]): void {
    out.push({ type: 'put', key: recordKey(this.groupId, KIND_SNAPSHOT_METADATA), value: encodeSnapshotMetadata(this.snap.metadata) });
    out.push({ type: 'put', key: recordKey(this.groupId, KIND_SNAPSHOT_DATA), value: this.snap.data });
  }

  private setOffset(offset: LogOffset, out: LogWrite[]): void {
    this.offset = { ...offset };
    out.push({ type: 'put', key: recordKey(this.groupId, KIND_LOG_OFFSET), value: encodeLogOffset(offset) });
  }

  private deleteEntries(from: number, to: number, out: LogWrite[]): void {
    for (let i = from; i <= to; i++) out.push({ type: 'del', key: entryKey(this.groupId, i) });
  }

  private pushEntry(entry: Entry): void {
    const k = this.runTerms.length - 1;
    if (k < 0 || this.runTerms[k] !== entry.term) {
      this.runStarts.push(entry.index);
      this.runTerms.push(entry.term);
    }
    if (this.cache.length === 0) this.cacheStart = entry.index;
    this.cache.push(entry);
    this.cacheBytes += entrySize(entry);
    this.last = entry.index;
  }

  /** Forgets entries [at, last] from memory. */
  private truncateFrom(at: number): void {
    this.last = at - 1;
    while (this.runStarts.length > 0 && this.runStarts[this.runStarts.length - 1] >= at) {
      this.runStarts.pop();
      this.runTerms.pop();
    }
    if (at > this.cacheStart) {
      for (let k = at - this.cacheStart; k < this.cache.length; k++) this.cacheBytes -= entrySize(this.cache[k]);
      this.cache.length = at - this.cacheStart;
    } else {
      this.dropCache();
    }
  }

  private dropCache(): void {
    this.cache = [];
    this.cacheBytes = 0;
    this.cacheStart = this.last + 1;
  }

  /** Keeps the newest entries within the cache bound, once all of the group's writes are in LevelDB. */
  private evict(): void {
    if (this.writesInFlight > 0 || this.cacheBytes <= this.tailCacheBytes) return;
    let drop = 0;
    while (drop < this.cache.length - 1 && this.cacheBytes > this.tailCacheBytes) {
      this.cacheBytes -= entrySize(this.cache[drop]);
      drop++;
    }
    this.cache.splice(0, drop);
    this.cacheStart += drop;
  }
}
