/**
 * A small seeded PRNG (mulberry32): the Raft core's only source of randomness, so a run is fully
 * determined by its seeds.
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  intBelow(n: number): number {
    return Math.floor((this.nextUint32() / 0x1_0000_0000) * n);
  }
}
