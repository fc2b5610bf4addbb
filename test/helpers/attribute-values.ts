import type { AttributeValue } from '@aws-sdk/client-dynamodb';

/** A string attribute value. */
export const s = (value: string): AttributeValue => ({ S: value });
/** A number attribute value. */
export const n = (value: number): AttributeValue => ({ N: String(value) });
/** The integers from `from` to `to`, both included. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
