import { describe, expect, it } from 'vitest';
import { splitRequest } from '../src/commands/admin-split.ts';

/** `shoal admin split <table> [--at <key>]`: what reaches AdminService.Split. */
describe('shoal admin split --at', () => {
  it('sends no key without --at (the widest partition splits in the middle)', () => {
    expect(splitRequest('orders', undefined)).toEqual({ table: 'orders' });
  });

  it('sends a partition key value given as DynamoDB JSON as is, for the meta leader to encode', () => {
    expect(splitRequest('orders', ' {"S":"user42"} ')).toEqual({ table: 'orders', hashValue: '{"S":"user42"}' });
  });

  it('sends an encoded key given in hex as bytes', () => {
    expect(splitRequest('orders', '0000000580')).toEqual({ table: 'orders', splitKey: new Uint8Array([0, 0, 0, 5, 0x80]) });
  });

  it('refuses anything else, saying what it takes', () => {
    expect(() => splitRequest('orders', 'user42')).toThrow(/DynamoDB JSON .* or an encoded key in hex/);
    expect(() => splitRequest('orders', 'abc')).toThrow(/encoded key in hex/);
  });
});
