import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { errorOf } from './dynamo-error.ts';
import {
  addNumbers,
  compareNumbers,
  encodeNumberKey,
  normalizeNumber,
  subtractNumbers,
} from '../src/number.ts';

// Fixed seed: the suite is deterministic; change it locally to explore more cases.
fc.configureGlobal({ seed: 20261125 });

const OVERFLOW = 'Number overflow. Attempting to store a number with magnitude larger than supported range';
const UNDERFLOW = 'Number underflow. Attempting to store a number with magnitude smaller than supported range';
const PRECISION = 'Attempting to store more than 38 significant digits in a Number';
const LARGEST = '9.9999999999999999999999999999999999999E+125';

/** A valid number: sign, 1..38 significant digits, a leading-digit exponent in range. */
const numberParts = fc.record({
  negative: fc.boolean(),
  digits: fc.oneof(fc.stringMatching(/^[1-9]$/), fc.stringMatching(/^[1-9]\d{0,36}[1-9]$/)),
  exponent: fc.oneof(fc.integer({ min: -130, max: 125 }), fc.integer({ min: -3, max: 3 })),
});

function scientific(p: { negative: boolean; digits: string; exponent: number }): string {
  const mantissa = p.digits.length > 1 ? `${p.digits[0]}.${p.digits.slice(1)}` : p.digits;
  return `${p.negative ? '-' : ''}${mantissa}E${p.exponent}`;
}

/** Valid numbers, including zero and values close to each other. */
const numberText = fc.oneof(
  numberParts.map(scientific),
  fc.constantFrom('0', '1', '-1', '0.5', '-0.5', '10', '1E-130', `-${LARGEST}`, LARGEST),
  fc.integer({ min: -1000, max: 1000 }).map(String),
);

describe('normalizeNumber', () => {
  it.each([
    ['1.0', '1'],
    ['1E2', '100'],
    ['1e+2', '100'],
    ['-0', '0'],
    ['+0.000', '0'],
    ['0e999', '0'],
    ['007.50', '7.5'],
    ['.5', '0.5'],
    ['5.', '5'],
    ['+3', '3'],
    ['-1.5e-3', '-0.0015'],
    ['123.456e1', '1234.56'],
    ['123.456E-1', '12.3456'],
    ['1200', '1200'],
    ['12E-5', '0.00012'],
    ['1E-130', `0.${'0'.repeat(129)}1`],
    ['1e125', `1${'0'.repeat(125)}`],
    [LARGEST, `${'9'.repeat(38)}${'0'.repeat(88)}`],
    ['12345678901234567890123456789012345678', '12345678901234567890123456789012345678'],
    // Trailing zeros are not significant digits.
    ['123456789012345678901234567890123456780000', '123456789012345678901234567890123456780000'],
    ['0.00000000000000000000000000000000000000000000001', `0.${'0'.repeat(46)}1`],
  ])('%s → %s', (input, expected) => {
    expect(normalizeNumber(input)).toBe(expected);
  });

  it.each([
    ['abc', 'The parameter cannot be converted to a numeric value: abc'],
    ['', 'The parameter cannot be converted to a numeric value'],
    ['1 ', 'The parameter cannot be converted to a numeric value: 1 '],
    [' 1', 'The parameter cannot be converted to a numeric value:  1'],
    ['.', 'The parameter cannot be converted to a numeric value: .'],
    ['-', 'The parameter cannot be converted to a numeric value: -'],
    ['e5', 'The parameter cannot be converted to a numeric value: e5'],
    ['1e', 'The parameter cannot be converted to a numeric value: 1e'],
    ['1.2.3', 'The parameter cannot be converted to a numeric value: 1.2.3'],
    ['Infinity', 'The parameter cannot be converted to a numeric value: Infinity'],
    ['NaN', 'The parameter cannot be converted to a numeric value: NaN'],
    ['0x10', 'The parameter cannot be converted to a numeric value: 0x10'],
    ['1_000', 'The parameter cannot be converted to a numeric value: 1_000'],
    ['123456789012345678901234567890123456789', PRECISION],
    ['-1.23456789012345678901234567890123456789', PRECISION],
    ['1e126', OVERFLOW],
    ['-1e126', OVERFLOW],
    ['10E125', OVERFLOW],
    ['1e-131', UNDERFLOW],
    ['-1e-131', UNDERFLOW],
    ['0.1E-130', UNDERFLOW],
    ['1e99999999999999999999999', OVERFLOW],
    ['1e-99999999999999999999999', UNDERFLOW],
    // Overflow is reported before precision, as DynamoDB does.
    [`${'1'.repeat(40)}E200`, OVERFLOW],
  ])('%j is rejected: %s', (input, message) => {
    expect(errorOf(() => normalizeNumber(input))).toEqual({ type: 'ValidationException', message });
  });

  it('is idempotent and keeps the value', () => {
    fc.assert(
      fc.property(numberText, (text) => {
        const canonical = normalizeNumber(text);
        expect(normalizeNumber(canonical)).toBe(canonical);
        expect(new Decimal(canonical).eq(new Decimal(text))).toBe(true);
        expect(canonical).not.toMatch(/[eE+]/);
      }),
    );
  });

  it('gives equal numbers written differently one text', () => {
    fc.assert(
      fc.property(numberParts, fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }), (p, zeros, shift) => {
        // The same value with leading zeros, trailing zeros and a shifted exponent.
        const mantissa = `${'0'.repeat(zeros)}${p.digits}${'0'.repeat(zeros)}`;
        const exponent = p.exponent - (p.digits.length - 1) - zeros - shift;
        const shifted = `${p.negative ? '-' : '+'}${mantissa}${'0'.repeat(shift)}e${exponent}`;
        expect(normalizeNumber(shifted)).toBe(normalizeNumber(scientific(p)));
      }),
    );
  });
});

describe('compareNumbers', () => {
  it.each([
    ['1', '2', -1],
    ['2', '1', 1],
    ['1', '1.0', 0],
    ['-0', '0', 0],
    ['-1', '0', -1],
    ['-1', '-2', 1],
    ['10', '9.99', 1],
    ['0.001', '0.01', -1],
    ['-0.001', '-0.01', 1],
    ['1E-130', '0', 1],
    ['12345678901234567890123456789012345678', '12345678901234567890123456789012345679', -1],
  ])('%s vs %s', (a, b, expected) => {
    expect(Math.sign(compareNumbers(a, b))).toBe(expected);
  });

  it('agrees with decimal.js', () => {
    fc.assert(
      fc.property(numberText, numberText, (a, b) => {
        expect(Math.sign(compareNumbers(a, b))).toBe(new Decimal(a).comparedTo(new Decimal(b)));
      }),
    );
  });
});

describe('addNumbers and subtractNumbers', () => {
  it.each([
    ['0.1', '0.2', '0.3'],
    ['1', '-1', '0'],
    ['99999999999999999999999999999999999999', '1', '100000000000000000000000000000000000000'],
    ['1E-130', '1E-130', `0.${'0'.repeat(129)}2`],
    ['1.5', '2.50', '4'],
  ])('%s + %s = %s', (a, b, sum) => {
    expect(addNumbers(a, b)).toBe(sum);
  });

  it.each([
    ['1', '0.9', '0.1'],
    ['1E-130', '1E-130', '0'],
    ['-5', '-7', '2'],
    ['12345678901234567890123456789012345678', '12345678901234567890123456789012345677', '1'],
  ])('%s - %s = %s', (a, b, difference) => {
    expect(subtractNumbers(a, b)).toBe(difference);
  });

  it('reports results that do not fit a Number with DynamoDB errors', () => {
    expect(errorOf(() => addNumbers(LARGEST, '1E125'))?.message).toBe(OVERFLOW);
    expect(errorOf(() => subtractNumbers(`-${LARGEST}`, '1E125'))?.message).toBe(OVERFLOW);
    expect(errorOf(() => addNumbers('1E100', '1'))?.message).toBe(PRECISION);
    expect(errorOf(() => subtractNumbers('1.1E-130', '1E-130'))?.message).toBe(UNDERFLOW);
    expect(errorOf(() => addNumbers('x', '1'))?.message).toBe('The parameter cannot be converted to a numeric value: x');
  });

  // Reference: decimal.js with far more precision than any result can need.
  const Reference = Decimal.clone({ precision: 2000, toExpNeg: -9e15, toExpPos: 9e15 });

  function referenceResult(value: Decimal): string | { type: string; message: string } | undefined {
    const error = errorOf(() => normalizeNumber(value.toFixed()));
    return error ?? normalizeNumber(value.toFixed());
  }

  it('is exact: add agrees with decimal.js at high precision, errors included', () => {
    fc.assert(
      fc.property(numberText, numberText, (a, b) => {
        const expected = referenceResult(new Reference(a).plus(b));
        const error = errorOf(() => addNumbers(a, b));
        expect(error ?? addNumbers(a, b)).toEqual(expected);
      }),
    );
  });

  it('is exact: subtract agrees with decimal.js at high precision, errors included', () => {
    fc.assert(
      fc.property(numberText, numberText, (a, b) => {
        const expected = referenceResult(new Reference(a).minus(b));
        const error = errorOf(() => subtractNumbers(a, b));
        expect(error ?? subtractNumbers(a, b)).toEqual(expected);
      }),
    );
  });
});

describe('encodeNumberKey', () => {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

  it('has the documented layout', () => {
    expect(hex(encodeNumberKey('0'))).toBe('02');
    // 123 = 1.23E2: tag 03, exponent 2 + 130 = 0x84, pairs "12" → 13 (0x0d), "3(0)" → 31 (0x1f), end 00.
    expect(hex(encodeNumberKey('123'))).toBe('03840d1f00');
    // -123: tag 01, exponent complemented, pairs 101 - 13 = 88 (0x58), 101 - 31 = 70 (0x46), end ff.
    expect(hex(encodeNumberKey('-123'))).toBe('017b5846ff');
    expect(encodeNumberKey(LARGEST).length).toBe(22);
  });

  it('encodes equal numbers identically', () => {
    expect(hex(encodeNumberKey('1.50'))).toBe(hex(encodeNumberKey('15E-1')));
    expect(hex(encodeNumberKey('-0'))).toBe(hex(encodeNumberKey('0')));
  });

  it('rejects what is not a valid Number', () => {
    expect(errorOf(() => encodeNumberKey('1e126'))?.message).toBe(OVERFLOW);
  });

  it('orders bytes as numbers, also with bytes appended (self-delimiting)', () => {
    fc.assert(
      fc.property(numberText, numberText, fc.uint8Array({ maxLength: 4 }), fc.uint8Array({ maxLength: 4 }), (a, b, x, y) => {
        const expected = Math.sign(compareNumbers(a, b));
        const ea = encodeNumberKey(a);
        const eb = encodeNumberKey(b);
        expect(Math.sign(Buffer.compare(ea, eb))).toBe(expected);
        if (expected !== 0) {
          expect(Math.sign(Buffer.compare(Buffer.concat([ea, x]), Buffer.concat([eb, y])))).toBe(expected);
        }
      }),
      { numRuns: 500 },
    );
  });
});
