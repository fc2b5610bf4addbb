/**
 * The ordered byte keys of Shoal's key space:
 *
 *   spaceId (4 bytes, big-endian) | fingerprint64(partition key) (8 bytes, big-endian)
 *   | partition key value | sort key value(s)
 *
 * A table or index is one space; the fingerprint spreads item collections evenly over the space so
 * partitions can cut it into equal hash slices; the values after it keep an item collection
 * contiguous and ordered by sort key (memcmp order of keys == DynamoDB's order of sort keys).
 *
 * Everything here is persisted in every key: never change an encoding.
 */
import farmhash from 'farmhash';
import type { AttributeValue } from './attribute-value.ts';
import { encodeNumberKey, normalizeNumber } from './number.ts';
import { decodeBinary } from './values.ts';

const SPACE_ID_BYTES = 4;
const FINGERPRINT_BYTES = 8;
/** Space ids are unsigned 32-bit; the last one is reserved so every space has an upper bound. */
export const MAX_SPACE_ID = 0xfffffffe;
const HASH_SPACE = 1n << 64n;

/** memcmp order of two byte strings. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function keyBytes(v: AttributeValue): Buffer {
  if ('S' in v) return Buffer.from(v.S, 'utf8');
  if ('N' in v) return Buffer.from(normalizeNumber(v.N), 'utf8');
  if ('B' in v) return decodeBinary(v.B);
  throw new TypeError(`not a key value: ${JSON.stringify(v)}`);
}

/**
 * farmhash's fingerprint64 (stable across versions and platforms, unlike hash64) of a partition key
 * value's bytes: UTF-8 for S, the canonical text for N (so equal numbers hash alike), raw bytes for B.
 */
export function fingerprint64(hashValue: AttributeValue): bigint {
  return farmhash.fingerprint64(keyBytes(hashValue));
}

// Strings and binaries: each 0x00 byte becomes 0x00 0xFF and the value ends with 0x00 0x01. The end
// marker sorts below every byte that can follow a value's prefix, so "a" < "ab" and "a" < "a\0",
// and no encoding is a prefix of another.
const ESCAPE = 0xff;
const TERMINATOR = 0x01;

/** The length of `bytes` escaped and terminated. */
function escapedLength(bytes: Uint8Array): number {
  let length = bytes.length + 2;
  for (const byte of bytes) if (byte === 0) length++;
  return length;
}

/** Writes `bytes` escaped (and terminated) into `out` at `at`; answers the offset after them. */
function writeEscaped(out: Uint8Array, at: number, bytes: Uint8Array, terminate: boolean): number {
  let j = at;
  for (const byte of bytes) {
    out[j++] = byte;
    if (byte === 0) out[j++] = ESCAPE;
  }
  if (terminate) {
    out[j++] = 0;
    out[j++] = TERMINATOR;
  }
  return j;
}

function escapeBytes(bytes: Uint8Array, terminate: boolean): Uint8Array {
  const out = new Uint8Array(escapedLength(bytes) - (terminate ? 0 : 2));
  writeEscaped(out, 0, bytes, terminate);
  return out;
}

/**
 * Order-preserving, self-delimiting encoding of a key value (S, N or B): memcmp order of encodings is
 * DynamoDB's order of the values (strings and binaries bytewise, numbers by value), also when other
 * bytes follow the encoding.
 */
export function encodeKeyValue(v: AttributeValue): Uint8Array {
  if ('N' in v) return encodeNumberKey(v.N);
  return escapeBytes(keyBytes(v), true);
}

/**
 * The encoding of an S or B value without its end marker: the encodings of all values that begin
 * with `v` (begins_with) start with these bytes, and only those.
 */
export function encodeKeyValuePrefix(v: AttributeValue): Uint8Array {
  if ('N' in v) throw new TypeError('begins_with takes a string or binary value');
  return escapeBytes(keyBytes(v), false);
}

function checkedSpaceId(spaceId: number): number {
  if (!Number.isInteger(spaceId) || spaceId < 0 || spaceId > MAX_SPACE_ID) {
    throw new RangeError(`space id out of range: ${spaceId}`);
  }
  return spaceId;
}

function spacePrefix(spaceId: number): Buffer {
  const out = Buffer.alloc(SPACE_ID_BYTES);
  out.writeUInt32BE(checkedSpaceId(spaceId));
  return out;
}

/** The first key beyond a space: the prefix of the next space id. */
function spaceEnd(spaceId: number): Buffer {
  checkedSpaceId(spaceId);
  const out = Buffer.alloc(SPACE_ID_BYTES);
  out.writeUInt32BE(spaceId + 1);
  return out;
}

function hashPrefix(spaceId: number, fingerprint: bigint): Buffer {
  const out = Buffer.alloc(SPACE_ID_BYTES + FINGERPRINT_BYTES);
  spacePrefix(spaceId).copy(out);
  out.writeBigUInt64BE(fingerprint, SPACE_ID_BYTES);
  return out;
}

/**
 * The key of one item collection's hash value (`hashBytes` its key bytes) followed by `sortValues`,
 * written into one buffer: an item key is built on every read and write, and building it from parts
 * (a buffer per part, then a concatenation) cost more than the read of a cached item.
 */
function encodeKey(spaceId: number, hashValue: AttributeValue, sortValues: readonly AttributeValue[]): Buffer {
  const hashBytes = keyBytes(hashValue);
  const hashEncoding = 'N' in hashValue ? encodeNumberKey(hashValue.N) : undefined;
  const sortEncodings = sortValues.map(encodeKeyValue);
  let length = SPACE_ID_BYTES + FINGERPRINT_BYTES + (hashEncoding?.length ?? escapedLength(hashBytes));
  for (const encoding of sortEncodings) length += encoding.length;
  const out = Buffer.allocUnsafe(length);
  out.writeUInt32BE(checkedSpaceId(spaceId), 0);
  const fingerprint = farmhash.fingerprint64(hashBytes);
  out.writeUInt32BE(Number(fingerprint >> 32n), SPACE_ID_BYTES);
  out.writeUInt32BE(Number(fingerprint & 0xffffffffn), SPACE_ID_BYTES + 4);
  let at = SPACE_ID_BYTES + FINGERPRINT_BYTES;
  if (hashEncoding) {
    out.set(hashEncoding, at);
    at += hashEncoding.length;
  } else {
    at = writeEscaped(out, at, hashBytes, true);
  }
  for (const encoding of sortEncodings) {
    out.set(encoding, at);
    at += encoding.length;
  }
  return out;
}

/** The prefix shared by every key of one item collection (one partition key value). */
export function encodeCollectionPrefix(spaceId: number, hashValue: AttributeValue): Uint8Array {
  return encodeKey(spaceId, hashValue, []);
}

/**
 * The key of an item in a space. `sortValues` are the sort key, and for index entries whatever else
 * makes the entry unique (the table's key values).
 */
export function encodeItemKey(spaceId: number, hashValue: AttributeValue, ...sortValues: AttributeValue[]): Uint8Array {
  return encodeKey(spaceId, hashValue, sortValues);
}

/** The smallest key greater than every key starting with `prefix` (undefined: no such key). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      // A copy: Buffer's slice() would share memory with the prefix.
      const end = Uint8Array.from(prefix.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return undefined;
}

/** The whole key range of one space, [start, end). */
export function spaceRange(spaceId: number): { start: Uint8Array; end: Uint8Array } {
  return { start: spacePrefix(spaceId), end: spaceEnd(spaceId) };
}

/**
 * Segment `segment` of `total` equal slices of a space's 64-bit hash range, [start, end): the unit
 * of a parallel Scan segment and of a new table's initial partitions. The slices cover the space
 * exactly, without overlap.
 */
export function hashSliceRange(spaceId: number, segment: number, total: number): { start: Uint8Array; end: Uint8Array } {
  if (!Number.isInteger(total) || total < 1 || !Number.isInteger(segment) || segment < 0 || segment >= total) {
    throw new RangeError(`bad hash slice ${segment} of ${total}`);
  }
  const sliceStart = (i: number) => (BigInt(i) * HASH_SPACE) / BigInt(total);
  const start = segment === 0 ? spacePrefix(spaceId) : hashPrefix(spaceId, sliceStart(segment));
  const end = segment === total - 1 ? spaceEnd(spaceId) : hashPrefix(spaceId, sliceStart(segment + 1));
  return { start, end };
}
