import { describe, expect, it } from 'vitest';
import { Prng } from '../src/prng.ts';

describe('Prng', () => {
  it('is a pure function of its seed', () => {
    const draw = (seed: number) => {
      const p = new Prng(seed);
      return Array.from({ length: 5 }, () => p.nextUint32());
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('intBelow stays in [0, n) and reaches every value', () => {
    const p = new Prng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = p.intBelow(10);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(10);
      seen.add(v);
    }
    expect(seen.size).toBe(10);
  });
});
