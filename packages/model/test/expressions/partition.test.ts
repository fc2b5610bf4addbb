import { describe, expect, it } from 'vitest';
import { compilePartitionExpressions } from '../../src/index.ts';
import { validationMessage } from './helpers.ts';

describe('compilePartitionExpressions', () => {
  // The key condition's placeholders reach a partition with the rest of the request's.
  const names = { '#k': 'pk', '#f': 'flag', '#p': 'shown' };
  const values = { ':k': { S: 'key' }, ':f': { BOOL: true } };

  it('keeps only the placeholders its own expressions use', () => {
    const compiled = compilePartitionExpressions({ filter: '#f = :f', projection: '#p', names, values });
    expect(compiled.filter?.evaluate({ flag: { BOOL: true } })).toBe(true);
    expect(compiled.filter?.evaluate({ flag: { BOOL: false } })).toBe(false);
    expect(compiled.projection?.apply({ shown: { N: '1' }, hidden: { N: '2' } })).toEqual({ shown: { N: '1' } });
  });

  it('compiles with no placeholder map when its expressions use none', () => {
    const compiled = compilePartitionExpressions({ projection: 'shown', names, values });
    expect(compiled.projection?.apply({ shown: { N: '1' }, other: { N: '2' } })).toEqual({ shown: { N: '1' } });
  });

  it('still reports a placeholder its expressions use but the request does not define', () => {
    expect(validationMessage(() => compilePartitionExpressions({ condition: '#missing = :f', names, values }))).toMatch(
      /#missing/,
    );
  });
});
