/**
 * Keys and values of the Raft-log database (see store.ts for the layout). Values are a compact
 * binary encoding: unsigned varints for numbers, raw bytes for payloads. An entry's value is
 * `type(1) term(uvarint) data(rest)`: 2–4 bytes of overhead per entry, where JSON with base64 data
 * costs about a third of the payload again (scripts/bench-raft-log.ts measures both).
 */
import type { ConfState, Entry, EntryType, HardState, NodeId, SnapshotMetadata } from '@shoal/raft';

/** A Raft group's id on a node: a non-negative safe integer, stored as a big-endian u64. */
export type GroupId = number;

/** The kind byte after the group id; a group's keys sort in this order. */
export const KIND_HARD_STATE = 0x01;
/** Index and term of the last entry removed from the log (a snapshot or a compaction). */
export const KIND_LOG_OFFSET = 0x02;
export const KIND_SNAPSHOT_METADATA = 0x03;
export const KIND_SNAPSHOT_DATA = 0x04;
export const KIND_ENTRY = 0x05;

const GROUP_PREFIX_LENGTH = 8;

function writeU64(view: DataView, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a u64 safe integer: ${n}`);
  view.setUint32(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 4, n % 2 ** 32);
}

function readU64(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}

/** `group(8) kind(1)`, the key of a group's singleton records. */
export function recordKey(group: GroupId, kind: number): Uint8Array {
  const key = new Uint8Array(GROUP_PREFIX_LENGTH + 1);
  writeU64(new DataView(key.buffer), 0, group);
  key[GROUP_PREFIX_LENGTH] = kind;
  return key;
}

/** `group(8) KIND_ENTRY index(8)`. */
export function entryKey(group: GroupId, index: number): Uint8Array {
  const key = new Uint8Array(GROUP_PREFIX_LENGTH + 1 + 8);
  const view = new DataView(key.buffer);
  writeU64(view, 0, group);
  key[GROUP_PREFIX_LENGTH] = KIND_ENTRY;
  writeU64(view, GROUP_PREFIX_LENGTH + 1, index);
  return key;
}

export interface DecodedKey {
  group: GroupId;
  kind: number;
  /** Only for entries. */
  index: number;
}

export function decodeKey(key: Uint8Array): DecodedKey {
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const kind = key[GROUP_PREFIX_LENGTH];
  const expected = kind === KIND_ENTRY ? GROUP_PREFIX_LENGTH + 9 : GROUP_PREFIX_LENGTH + 1;
  if (key.byteLength !== expected) throw new RaftLogCorruptionError(`malformed key of ${key.byteLength} bytes`);
  return {
    group: readU64(view, 0),
    kind,
    index: kind === KIND_ENTRY ? readU64(view, GROUP_PREFIX_LENGTH + 1) : 0,
  };
}

/** The Raft-log database holds something this code cannot have written. */
export class RaftLogCorruptionError extends Error {
  constructor(message: string) {
    super(`raft log corrupt: ${message}`);
    this.name = 'RaftLogCorruptionError';
  }
}

/** A plain Uint8Array view of the same bytes: LevelDB hands back Buffers, callers expect Uint8Arrays. */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

class Writer {
  private bytes: Uint8Array;
  private length = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + extra));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  byte(b: number): void {
    this.ensure(1);
    this.bytes[this.length++] = b;
  }

  uvarint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n}`);
    this.ensure(uvarintLength(n));
    while (n >= 0x80) {
      this.bytes[this.length++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.bytes[this.length++] = n;
  }

  ids(ids: readonly NodeId[]): void {
    this.uvarint(ids.length);
    for (const id of ids) this.uvarint(id);
  }

  finish(): Uint8Array {
    return this.length === this.bytes.length ? this.bytes : this.bytes.slice(0, this.length);
  }
}

class Reader {
  private readonly bytes: Uint8Array;
  private readonly what: string;
  pos = 0;

  constructor(bytes: Uint8Array, what: string) {
    this.bytes = bytes;
    this.what = what;
  }

  byte(): number {
    if (this.pos >= this.bytes.byteLength) throw new RaftLogCorruptionError(`truncated ${this.what}`);
    return this.bytes[this.pos++];
  }

  uvarint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
      if (scale > 2 ** 49) throw new RaftLogCorruptionError(`varint too long in ${this.what}`);
    }
  }

  ids(): NodeId[] {
    const count = this.uvarint();
    const ids: NodeId[] = [];
    for (let i = 0; i < count; i++) ids.push(this.uvarint());
    return ids;
  }

  end(): void {
    if (this.pos !== this.bytes.byteLength) throw new RaftLogCorruptionError(`trailing bytes in ${this.what}`);
  }
}

const ENTRY_TYPES: readonly EntryType[] = ['normal', 'confChange'];

function uvarintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    length++;
  }
  return length;
}

export function encodeEntryValue(entry: Entry): Uint8Array {
  // Written directly and sized exactly: the payload is copied once. A pooled Buffer (every byte
  // is written below) is several times faster than a fresh zero-filled Uint8Array for 1 KB values.
  const type = ENTRY_TYPES.indexOf(entry.type);
  let term = entry.term;
  if (!Number.isSafeInteger(term) || term < 0 || type < 0) throw new RangeError(`cannot encode entry ${entry.index}`);
  const header = 1 + uvarintLength(term);
  const value = Buffer.allocUnsafe(header + entry.data.byteLength);
  value[0] = type;
  let at = 1;
  while (term >= 0x80) {
    value[at++] = (term % 0x80) | 0x80;
    term = Math.floor(term / 0x80);
  }
  value[at] = term;
  value.set(entry.data, header);
  return value;
}

/** `value` must not be reused by the caller: the entry's data is a view of it. */
export function decodeEntryValue(index: number, value: Uint8Array): Entry {
  const type = ENTRY_TYPES[value[0]];
  if (type === undefined) throw new RaftLogCorruptionError(`unknown type of entry ${index}`);
  let term = 0;
  let scale = 1;
  let at = 1;
  for (;;) {
    if (at >= value.byteLength || at > 8) throw new RaftLogCorruptionError(`malformed term of entry ${index}`);
    const b = value[at++];
    term += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 0x80;
  }
  return { term, index, type, data: new Uint8Array(value.buffer, value.byteOffset + at, value.byteLength - at) };
}

export function encodeHardState(hs: HardState): Uint8Array {
  const w = new Writer(12);
  w.uvarint(hs.term);
  w.uvarint(hs.vote);
  w.uvarint(hs.commit);
  return w.finish();
}

export function decodeHardState(value: Uint8Array): HardState {
  const r = new Reader(value, 'hard state');
  const hs = { term: r.uvarint(), vote: r.uvarint(), commit: r.uvarint() };
  r.end();
  return hs;
}

export interface LogOffset {
  index: number;
  term: number;
}

export function encodeLogOffset(offset: LogOffset): Uint8Array {
  const w = new Writer(8);
  w.uvarint(offset.index);
  w.uvarint(offset.term);
  return w.finish();
}

export function decodeLogOffset(value: Uint8Array): LogOffset {
  const r = new Reader(value, 'log offset');
  const offset = { index: r.uvarint(), term: r.uvarint() };
  r.end();
  return offset;
}

export function encodeSnapshotMetadata(m: SnapshotMetadata): Uint8Array {
  const w = new Writer(32);
  w.uvarint(m.index);
  w.uvarint(m.term);
  const cs = m.confState;
  w.ids(cs.voters);
  w.ids(cs.learners);
  w.ids(cs.votersOutgoing);
  w.ids(cs.learnersNext);
  w.byte(cs.autoLeave ? 1 : 0);
  return w.finish();
}

export function decodeSnapshotMetadata(value: Uint8Array): SnapshotMetadata {
  const r = new Reader(value, 'snapshot metadata');
  const index = r.uvarint();
  const term = r.uvarint();
  const confState: ConfState = {
    voters: r.ids(),
    learners: r.ids(),
    votersOutgoing: r.ids(),
    learnersNext: r.ids(),
    autoLeave: r.byte() === 1,
  };
  r.end();
  return { index, term, confState };
}
