/**
 * Type, equality and order of attribute values, with DynamoDB's semantics: numbers compare by value,
 * strings and binaries by their bytes, sets as sets.
 */
import type { AttributeType, AttributeValue } from './attribute-value.ts';
import { compareNumbers, normalizeNumber } from './number.ts';

const ATTRIBUTE_TYPES: readonly AttributeType[] = ['S', 'N', 'B', 'BOOL', 'NULL', 'M', 'L', 'SS', 'NS', 'BS'];

/** The type of a (valid) attribute value: its one type key. */
export function attributeTypeOf(v: AttributeValue): AttributeType {
  for (const type of ATTRIBUTE_TYPES) {
    if (type in v) return type;
  }
  throw new TypeError(`not an attribute value: ${JSON.stringify(v)}`);
}

/** The bytes of a B value or BS element. */
export function decodeBinary(b64: string): Buffer {
  return Buffer.from(b64, 'base64');
}

// UTF-16 code units sort surrogate pairs (code points ≥ U+10000) below U+E000..U+FFFF; UTF-8 and
// code point order put them above. Shifting the two ranges at the first difference fixes that.
function codePointOrderUnit(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

/** Compares strings by their UTF-8 bytes (= code point order), as DynamoDB sorts S values. */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointOrderUnit(x) - codePointOrderUnit(y);
  }
  return a.length - b.length;
}

/** Compares two binary values (base64) by their bytes. */
export function compareBinary(a: string, b: string): number {
  return Buffer.compare(decodeBinary(a), decodeBinary(b));
}

/**
 * Order of two scalars of the same type (S, N or B), as DynamoDB's comparison operators and sort
 * keys see it; undefined when the types differ or are not ordered.
 */
export function compareScalars(a: AttributeValue, b: AttributeValue): number | undefined {
  if ('S' in a) return 'S' in b ? Math.sign(compareUtf8(a.S, b.S)) : undefined;
  if ('N' in a) return 'N' in b ? Math.sign(compareNumbers(a.N, b.N)) : undefined;
  if ('B' in a) return 'B' in b ? Math.sign(compareBinary(a.B, b.B)) : undefined;
  return undefined;
}

function setsEqual(a: string[], b: string[], canonical: (element: string) => string): boolean {
  // Elements of a valid set are distinct, so equal sizes plus inclusion is set equality.
  if (a.length !== b.length) return false;
  const elements = new Set(a.map(canonical));
  return b.every((y) => elements.has(canonical(y)));
}

const numbersEqual = (x: string, y: string) => compareNumbers(x, y) === 0;
const binariesEqual = (x: string, y: string) => compareBinary(x, y) === 0;
const sameString = (x: string) => x;
const canonicalBinary = (x: string) => decodeBinary(x).toString('base64');

/** DynamoDB equality: numbers by value, sets regardless of order, maps and lists deeply. */
export function attributeValuesEqual(a: AttributeValue, b: AttributeValue): boolean {
  if ('S' in a) return 'S' in b && a.S === b.S;
  if ('N' in a) return 'N' in b && numbersEqual(a.N, b.N);
  if ('B' in a) return 'B' in b && binariesEqual(a.B, b.B);
  if ('BOOL' in a) return 'BOOL' in b && a.BOOL === b.BOOL;
  if ('NULL' in a) return 'NULL' in b;
  if ('SS' in a) return 'SS' in b && setsEqual(a.SS, b.SS, sameString);
  if ('NS' in a) return 'NS' in b && setsEqual(a.NS, b.NS, normalizeNumber);
  if ('BS' in a) return 'BS' in b && setsEqual(a.BS, b.BS, canonicalBinary);
  if ('L' in a) {
    return 'L' in b && a.L.length === b.L.length && a.L.every((x, i) => attributeValuesEqual(x, b.L[i]));
  }
  if (!('M' in b)) return false;
  const keys = Object.keys(a.M);
  return (
    keys.length === Object.keys(b.M).length &&
    keys.every((k) => Object.hasOwn(b.M, k) && attributeValuesEqual(a.M[k], b.M[k]))
  );
}
