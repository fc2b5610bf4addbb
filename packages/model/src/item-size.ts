/**
 * Item sizes and capacity units, by DynamoDB's rules ("Item sizes and formats" in the developer
 * guide): an item is the sum of its attribute names' UTF-8 lengths and its values' sizes.
 */
import type { AttributeValue, Item } from './attribute-value.ts';
import { validationError } from './errors.ts';
import { numberParts } from './number.ts';
import { decodeBinary } from './values.ts';

/** DynamoDB's item size limit, 400 KB. */
export const MAX_ITEM_SIZE = 400 * 1024;
export const READ_UNIT_BYTES = 4 * 1024;
export const WRITE_UNIT_BYTES = 1024;
/** Transactional reads and writes cost twice the units of plain ones. */
export const TRANSACTION_CAPACITY_FACTOR = 2;

/** Strings up to this long are measured in JavaScript: a call into Buffer.byteLength costs more than their loop. */
const SHORT_STRING = 32;

/** UTF-8 bytes of a string (a lone surrogate counts 3, as Buffer.byteLength counts its replacement). */
function utf8Length(s: string): number {
  if (s.length > SHORT_STRING) return Buffer.byteLength(s, 'utf8');
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) {
      bytes += 1;
      continue;
    }
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // A surrogate pair: two code units, 4 bytes.
        bytes += 2;
        i++;
        continue;
      }
    }
    bytes += 2;
  }
  return bytes;
}

/**
 * The stored size of a number. The guide says "about 1 byte per two significant digits, plus 1";
 * precisely (as measured against DynamoDB by dynalite's item-size tests), numbers are stored in
 * base 100 aligned on the decimal point: one byte per base-100 digit the significant digits touch,
 * one more, and one for a minus sign. Zero is 1 byte.
 */
function numberSize(text: string): number {
  const { negative, digits, exponent } = numberParts(text);
  if (digits === '') return 1;
  const lowest = exponent - digits.length + 1; // power of ten of the last significant digit
  const centesimalDigits = Math.floor(exponent / 2) - Math.floor(lowest / 2) + 1;
  return 1 + centesimalDigits + (negative ? 1 : 0);
}

/** Size of a value without its name: what it adds to an item besides the attribute name. */
export function attributeValueSize(v: AttributeValue): number {
  if ('S' in v) return utf8Length(v.S);
  if ('N' in v) return numberSize(v.N);
  if ('B' in v) return decodeBinary(v.B).length;
  if ('BOOL' in v || 'NULL' in v) return 1;
  if ('SS' in v) return v.SS.reduce((sum, s) => sum + utf8Length(s), 0);
  if ('NS' in v) return v.NS.reduce((sum, n) => sum + numberSize(n), 0);
  if ('BS' in v) return v.BS.reduce((sum, b) => sum + decodeBinary(b).length, 0);
  // Lists and maps: 3 bytes, plus 1 byte per element, plus the elements (with their names in a map).
  if ('L' in v) return v.L.reduce((sum, e) => sum + 1 + attributeValueSize(e), 3);
  return Object.entries(v.M).reduce((sum, [name, e]) => sum + 1 + utf8Length(name) + attributeValueSize(e), 3);
}

/** The size of an item: names plus values. */
export function itemSize(item: Item): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += utf8Length(name) + attributeValueSize(value);
  return size;
}

/** Throws DynamoDB's error for an item over 400 KB. */
export function checkItemSize(item: Item): void {
  if (itemSize(item) > MAX_ITEM_SIZE) throw validationError('Item size has exceeded the maximum allowed size');
}

/**
 * Read units for reading `bytes` in one item operation: one unit per 4 KB started (at least one),
 * half of that for an eventually consistent read. For Query and Scan pass the total of the items.
 */
export function readCapacityUnits(bytes: number, consistent: boolean): number {
  const units = Math.max(1, Math.ceil(bytes / READ_UNIT_BYTES));
  return consistent ? units : units / 2;
}

/** Write units for writing an item of `bytes`: one unit per 1 KB started, at least one. */
export function writeCapacityUnits(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / WRITE_UNIT_BYTES));
}

/** Read units of one item read in a transaction (always strongly consistent, doubled). */
export function transactionalReadCapacityUnits(bytes: number): number {
  return TRANSACTION_CAPACITY_FACTOR * readCapacityUnits(bytes, true);
}

/** Write units of one item written (or condition-checked) in a transaction (doubled). */
export function transactionalWriteCapacityUnits(bytes: number): number {
  return TRANSACTION_CAPACITY_FACTOR * writeCapacityUnits(bytes);
}
