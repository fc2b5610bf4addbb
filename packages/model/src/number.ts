/**
 * DynamoDB numbers: decimals of up to 38 significant digits with a magnitude between 1E-130 and
 * 9.99…E+125, carried as strings. Parsing, checking and arithmetic are exact (no binary floating
 * point anywhere), and every number Shoal stores or returns is in one canonical text form, so equal
 * numbers are equal strings.
 */
import { Decimal } from 'decimal.js';
import { validationError } from './errors.ts';

export const MAX_NUMBER_DIGITS = 38;
/** Exponent of the leading digit (d.ddd × 10^e) of the largest and smallest magnitudes allowed. */
export const MAX_NUMBER_EXPONENT = 125;
export const MIN_NUMBER_EXPONENT = -130;

/**
 * A finite decimal split into its parts: value = ±d₁.d₂d₃… × 10^exponent. `digits` has neither
 * leading nor trailing zeros; zero has empty `digits` (and is never negative).
 */
export interface DecimalParts {
  negative: boolean;
  digits: string;
  exponent: number;
}

// Java's BigDecimal grammar, which DynamoDB accepts: optional sign, digits with an optional point
// ("1.", ".5"), optional exponent. No whitespace, no Infinity/NaN, no hex.
const NUMBER_SYNTAX = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

// Exponents beyond this cannot come back into range whatever the digit count of a request.
const EXPONENT_CLAMP = 1e15;

function notNumeric(text: string) {
  // DynamoDB leaves the colon and value off when the string is empty.
  return validationError(
    text === ''
      ? 'The parameter cannot be converted to a numeric value'
      : `The parameter cannot be converted to a numeric value: ${text}`,
  );
}

/** Splits number text into its parts without range checks. Throws DynamoDB's conversion error. */
export function parseNumber(text: string): DecimalParts {
  const match = NUMBER_SYNTAX.exec(text);
  const intPart = match?.[2] ?? '';
  const fracPart = match?.[3] ?? '';
  if (!match || intPart.length + fracPart.length === 0) throw notNumeric(text);
  const written = Number(match[4] ?? '0'); // ±Infinity or imprecise only far beyond the clamp
  const clamped = Math.max(-EXPONENT_CLAMP, Math.min(EXPONENT_CLAMP, written));
  const all = intPart + fracPart;
  let first = 0;
  while (first < all.length && all[first] === '0') first++;
  let last = all.length;
  while (last > first && all[last - 1] === '0') last--;
  if (first === last) return { negative: false, digits: '', exponent: 0 };
  // The digit at index i of `all` has weight 10^(intPart.length - 1 - i + clamped).
  return {
    negative: match[1] === '-',
    digits: all.slice(first, last),
    exponent: intPart.length - 1 - first + clamped,
  };
}

/** Throws DynamoDB's error when the parts are outside what a Number may hold. */
function checkRange(parts: DecimalParts): void {
  if (parts.digits === '') return;
  if (parts.exponent > MAX_NUMBER_EXPONENT) {
    throw validationError('Number overflow. Attempting to store a number with magnitude larger than supported range');
  }
  if (parts.exponent < MIN_NUMBER_EXPONENT) {
    throw validationError('Number underflow. Attempting to store a number with magnitude smaller than supported range');
  }
  if (parts.digits.length > MAX_NUMBER_DIGITS) {
    throw validationError('Attempting to store more than 38 significant digits in a Number');
  }
}

/** Plain decimal notation (no exponent), as DynamoDB returns numbers. */
function formatParts(parts: DecimalParts): string {
  const { digits, exponent } = parts;
  if (digits === '') return '0';
  let body: string;
  if (exponent < 0) {
    body = `0.${'0'.repeat(-exponent - 1)}${digits}`;
  } else if (exponent + 1 >= digits.length) {
    body = digits + '0'.repeat(exponent + 1 - digits.length);
  } else {
    body = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
  }
  return parts.negative ? `-${body}` : body;
}

/**
 * Validates number text and returns DynamoDB's canonical form: "1.0" → "1", "1E2" → "100",
 * "-0" → "0", "007.50" → "7.5". Errors carry DynamoDB's messages; checks run in DynamoDB's order
 * (overflow, underflow, then precision).
 */
export function normalizeNumber(text: string): string {
  return formatParts(numberParts(text));
}

/** The parts of a valid (in range) number. */
export function numberParts(text: string): DecimalParts {
  const parts = parseNumber(text);
  checkRange(parts);
  return parts;
}

function compareMagnitudes(a: DecimalParts, b: DecimalParts): number {
  if (a.exponent !== b.exponent) return a.exponent < b.exponent ? -1 : 1;
  // Same leading position: digit strings compare like padded decimals.
  const length = Math.max(a.digits.length, b.digits.length);
  const x = a.digits.padEnd(length, '0');
  const y = b.digits.padEnd(length, '0');
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Exact numeric comparison of two number strings: negative, zero or positive. */
export function compareNumbers(a: string, b: string): number {
  const x = parseNumber(a);
  const y = parseNumber(b);
  const signX = x.digits === '' ? 0 : x.negative ? -1 : 1;
  const signY = y.digits === '' ? 0 : y.negative ? -1 : 1;
  if (signX !== signY) return signX < signY ? -1 : 1;
  if (signX === 0) return 0;
  const magnitude = compareMagnitudes(x, y);
  return signX < 0 ? 0 - magnitude : magnitude; // 0 - 0 is +0, where -0 would be -0
}

// Two in-range operands span at most 126 + 130 digit positions, plus a carry: far below this, so
// sums and differences are exact and only then checked against DynamoDB's limits.
const ExactDecimal = Decimal.clone({ precision: 400, toExpNeg: -9e15, toExpPos: 9e15 });

function exactResult(value: Decimal): string {
  return normalizeNumber(value.toFixed());
}

/** a + b, exact, in canonical form; DynamoDB's errors when the result does not fit a Number. */
export function addNumbers(a: string, b: string): string {
  return exactResult(new ExactDecimal(normalizeNumber(a)).plus(normalizeNumber(b)));
}

/** a − b, exact, in canonical form; DynamoDB's errors when the result does not fit a Number. */
export function subtractNumbers(a: string, b: string): string {
  return exactResult(new ExactDecimal(normalizeNumber(a)).minus(normalizeNumber(b)));
}

// Key encoding tags. Negative < zero < positive, and room is left below and above.
const NEGATIVE_TAG = 0x01;
const ZERO_TAG = 0x02;
const POSITIVE_TAG = 0x03;
const POSITIVE_END = 0x00;
const NEGATIVE_END = 0xff;

/**
 * Order-preserving, self-delimiting bytes for a number: memcmp order of the encodings is numeric
 * order, and no encoding is a prefix of another, so encodings can be concatenated in a key.
 *
 * Layout: a sign tag; then, for non-zero values, one exponent byte (e + 130, 0..255) and the
 * digits in pairs, one byte per pair (10·d₁ + d₂ + 1, so 1..100; an odd last digit is paired with a
 * 0, which does not change the value), then an end byte (0x00) lower than every pair byte. A shorter
 * mantissa with the same prefix is the smaller magnitude, and the end byte sorts it first. Negative
 * numbers store the bitwise complement of the exponent byte, 101 − pair, and 0xFF as end, which
 * reverses the order of magnitudes. At most 22 bytes.
 *
 * Persisted in every key with a Number: never change it.
 */
export function encodeNumberKey(text: string): Uint8Array {
  const parts = numberParts(text);
  if (parts.digits === '') return Uint8Array.of(ZERO_TAG);
  const pairCount = Math.ceil(parts.digits.length / 2);
  const out = new Uint8Array(3 + pairCount);
  const negative = parts.negative;
  out[0] = negative ? NEGATIVE_TAG : POSITIVE_TAG;
  const exponentByte = parts.exponent - MIN_NUMBER_EXPONENT;
  out[1] = negative ? 0xff - exponentByte : exponentByte;
  for (let i = 0; i < pairCount; i++) {
    const high = parts.digits.charCodeAt(2 * i) - 48;
    const low = 2 * i + 1 < parts.digits.length ? parts.digits.charCodeAt(2 * i + 1) - 48 : 0;
    const pair = high * 10 + low + 1;
    out[2 + i] = negative ? 101 - pair : pair;
  }
  out[2 + pairCount] = negative ? NEGATIVE_END : POSITIVE_END;
  return out;
}
