/**
 * An in-memory Storage, for tests, simulations and benchmarks. `entries[0]` is a dummy entry
 * holding the index and term of the last compacted (snapshotted) entry.
 */
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './errors.ts';
import { limitSize } from './log.ts';
import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.ts';

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];

  /** `initial` seeds the membership of a new group (as if a snapshot at index 0 carried it). */
  constructor(initial?: Partial<ConfState>) {
    this.snap = {
      metadata: { index: 0, term: 0, confState: { ...emptyConfState(), ...initial } },
      data: new Uint8Array(0),
    };
    this.ents = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];
  }

  /**
   * Storage for an initial member of a new group: the membership and the initial state machine
   * (`data`) in a snapshot at index 1, term 1. Unlike the constructor's index-0 membership, this
   * makes a leader bring members added later up to date by snapshot, since the log from index 1
   * never mentions the initial members. Every initial member must be bootstrapped identically.
   */
  static bootstrap(confState: Partial<ConfState>, data: Uint8Array): MemoryStorage {
    const storage = new MemoryStorage();
    storage.applySnapshot({ metadata: { index: 1, term: 1, confState: { ...emptyConfState(), ...confState } }, data });
    storage.setHardState({ term: 1, vote: 0, commit: 1 });
    return storage;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private offset(): number {
    return this.ents[0].index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new Error(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    if (this.ents.length === 1) throw new UnavailableError();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  term(i: number): number {
    const offset = this.offset();
    if (i < offset) throw new CompactedError();
    if (i - offset >= this.ents.length) throw new UnavailableError();
    return this.ents[i - offset].term;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the contents with a snapshot (a follower receiving one). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 'normal', data: new Uint8Array(0) }];
  }

  /**
   * Records a snapshot of the state machine at applied index `index` (call `compact` afterwards
   * to drop the entries it covers).
   */
  createSnapshot(index: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    if (index > this.lastIndex()) throw new Error(`snapshot ${index} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = {
      metadata: { index, term: this.ents[index - this.offset()].term, confState: confState ?? this.snap.metadata.confState },
      data,
    };
    return this.snap;
  }

  /** Discards entries up to and including `compactIndex`. */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) throw new CompactedError();
    if (compactIndex > this.lastIndex()) throw new Error(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const dummy: Entry = { term: this.ents[i].term, index: this.ents[i].index, type: 'normal', data: new Uint8Array(0) };
    this.ents = [dummy, ...this.ents.slice(i + 1)];
  }

  /** Appends entries, replacing any existing suffix they overlap. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // all compacted already
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const at = entries[0].index - this.offset();
    if (at > this.ents.length) {
      throw new Error(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    }
    if (at < this.ents.length) this.ents.length = at;
    for (const e of entries) this.ents.push(e);
  }
}
