/**
 * The Raft log: entries in stable storage (the host's Storage) followed by unstable entries (and
 * possibly an unstable snapshot) not yet persisted, with the commit and applied positions.
 */
import { CompactedError, UnavailableError } from './errors.ts';
import type { Entry, Snapshot, Storage } from './types.ts';

/** Approximate encoded size of an entry, for message and Ready size limits. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 24;
}

/** Sum of payload bytes, for the uncommitted-size bound and the inflight byte window. */
export function payloadsSize(entries: readonly Entry[]): number {
  let s = 0;
  for (const e of entries) s += e.data.byteLength;
  return s;
}

/** The longest prefix of `entries` within `maxBytes`, but at least one entry. */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0 || maxBytes === Infinity) return entries;
  let size = entrySize(entries[0]);
  let n = 1;
  for (; n < entries.length; n++) {
    size += entrySize(entries[n]);
    if (size > maxBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

/**
 * Entries and snapshot handed to the host but not yet confirmed persisted. `offsetInProgress`
 * marks the entries already given out in a Ready, so a second Ready does not repeat them.
 */
export class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.metadata.index;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const k = i - this.offset;
    return k < this.entries.length ? this.entries[k].term : undefined;
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    const k = this.offsetInProgress - this.offset;
    return k >= this.entries.length ? [] : this.entries.slice(k);
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== undefined) this.snapshotInProgress = true;
  }

  /** Entries up to (i, t) are persisted; ignored if that entry was since overwritten. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || i < this.offset || gt !== t) return;
    const n = i + 1 - this.offset;
    this.entries = this.entries.slice(n);
    this.offset = i + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: Entry[]): void {
    const from = ents[0].index;
    const end = this.offset + this.entries.length;
    if (from === end) {
      // The common case: append directly.
      for (const e of ents) this.entries.push(e);
    } else if (from <= this.offset) {
      // Replace everything unstable.
      this.offset = from;
      this.entries = ents.slice();
    } else {
      // Truncate to `from`, then append.
      this.entries = this.entries.slice(0, from - this.offset).concat(ents);
    }
    this.offsetInProgress = Math.min(this.offsetInProgress, from);
  }

  /** Entries [lo, hi), all unstable. */
  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed on a quorum. */
  committed: number;
  /** Highest index the host has applied. */
  applied: number;
  /** Highest index handed to the host for applying (>= applied). */
  applying: number;
  /** Size limit of the committed entries of one Ready. */
  private readonly maxApplyingBytes: number;

  constructor(storage: Storage, maxApplyingBytes: number) {
    this.storage = storage;
    this.maxApplyingBytes = maxApplyingBytes;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // The log starts as if everything up to the storage's snapshot was committed and applied.
    this.committed = first - 1;
    this.applied = first - 1;
    this.applying = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term of entry i, or undefined when it is compacted or past the end. */
  maybeTerm(i: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /** Term of entry i; throws CompactedError or UnavailableError. */
  term(i: number): number {
    if (i < this.firstIndex() - 1) throw new CompactedError();
    if (i > this.lastIndex()) throw new UnavailableError();
    return this.maybeTerm(i)!;
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  matchTerm(i: number, t: number): boolean {
    return this.maybeTerm(i) === t;
  }

  /** Whether a log ending at (lastIndex, term) is at least as up to date as ours (§5.4.1). */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower side of MsgApp: if our log matches (index, logTerm), append `ents` (truncating
   * any conflicting suffix), commit up to `committed`, and return the last index of the new
   * entries; otherwise undefined.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) throw new Error(`entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    if (after < this.committed) throw new Error(`after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry of `ents` that is new or conflicts with ours, or 0 when all are
   * already in the log.
   */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term; 0 as the term when it
   * is not known (compacted). Both sides use this to skip a whole term of conflicting entries
   * per round trip when a follower's log diverges.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      const ourTerm = this.maybeTerm(index);
      if (ourTerm === undefined) return { index, term: 0 };
      if (ourTerm <= term) return { index, term: ourTerm };
    }
    return { index: 0, term: 0 };
  }

  /** Entries not yet handed to the host for persisting. */
  nextUnstableEntries(): Entry[] {
    return this.unstable.nextEntries();
  }

  hasNextUnstableEntries(): boolean {
    return this.unstable.offsetInProgress < this.unstable.offset + this.unstable.entries.length;
  }

  /** A snapshot is pending to be (or being) applied: no committed entries until it is. */
  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  nextUnstableSnapshot(): Snapshot | undefined {
    return this.unstable.nextSnapshot();
  }

  /** Committed entries not yet handed out for applying. */
  nextCommittedEntries(): Entry[] {
    if (this.hasNextOrInProgressSnapshot()) return [];
    const lo = this.applying + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingBytes);
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasNextOrInProgressSnapshot() && this.applying < this.committed;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(toCommit: number): void {
    if (toCommit <= this.committed) return;
    if (this.lastIndex() < toCommit) {
      throw new Error(`tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]; the raft log was corrupted, truncated, or lost`);
    }
    this.committed = toCommit;
  }

  acceptApplying(i: number): void {
    this.applying = Math.max(this.applying, i);
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      throw new Error(`applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
    this.applying = Math.max(this.applying, i);
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Commits up to `maxIndex` if that entry is of `term` (only entries of the leader's term). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && maxIndex !== Infinity && this.maybeTerm(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries from `i` to the end, at most `maxBytes` (at least one). */
  entries(i: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, last + 1, maxBytes);
  }

  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Infinity);
  }

  /** Entries [lo, hi) from storage and unstable, at most `maxBytes` (at least one). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo > hi) throw new Error(`invalid slice ${lo} > ${hi}`);
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new Error(`slice[${lo},${hi}) out of bound [${first},${this.lastIndex()}]`);
    if (lo === hi) return [];
    const uOffset = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < uOffset) {
      const stored = this.storage.entries(lo, Math.min(hi, uOffset), maxBytes);
      // Storage returned less than asked for: the size limit was reached.
      if (stored.length < Math.min(hi, uOffset) - lo) return stored;
      ents = stored;
    }
    if (hi > uOffset) {
      const unstable = this.unstable.slice(Math.max(lo, uOffset), hi);
      ents = ents.length > 0 ? ents.concat(unstable) : unstable;
    }
    return limitSize(ents, maxBytes);
  }
}
