import { describe, expect, it } from 'vitest';
import { ClientPool, MetaService } from '../src/index.ts';

describe('ClientPool', () => {
  it('makes one client per address and closes them all', async () => {
    const pool = new ClientPool(MetaService);
    const first = pool.get('127.0.0.1:1');
    expect(pool.get('127.0.0.1:1')).toBe(first);
    const other = pool.get('127.0.0.1:2');
    expect(other).not.toBe(first);
    pool.close();
    // A closed client's calls fail; the pool then makes a fresh client for the address.
    await expect(first.getPartitionMap({}, { timeoutMs: 1_000 })).rejects.toThrow(/shut down/);
    expect(pool.get('127.0.0.1:1')).not.toBe(first);
    pool.close();
  });
});
