/**
 * A weighted reservoir sample of the keys a partition serves, in the manner of CockroachDB's load
 * split finder and TiKV's load-based split: each request (a key, or a key range for a Query or Scan)
 * enters the sample with a chance proportional to its weight (capacity units; Efraimidis-Spirakis
 * A-Res, seeded so that runs repeat), and every sampled key counts what the requests recorded after
 * it did about it: fell left of it, right of it (at or after), or spanned it. A split key balances
 * left and right and is spanned by few requests; one key holding most of the weight is a hot item
 * that no split relieves (both judged on the meta leader: @shoal/meta's chooseSplitKey, hotKeyOf).
 */
import type { SampledKeyLoad } from '@shoal/meta';
import { compareBytes } from '@shoal/model';

/** What a request touched: one key (`end` absent) or the keys [start, end) (`end` undefined with `range`: unbounded). */
export interface KeySpan {
  start: Uint8Array;
  /** Exclusive end of a range; absent for a single key. */
  end?: Uint8Array;
  /** A range read unbounded above (a Scan of the last partition). */
  unboundedEnd?: boolean;
}

interface Entry extends SampledKeyLoad {
  priority: number;
}

/** mulberry32: a small seeded generator, enough for sampling. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class KeySample {
  readonly capacity: number;
  readonly #random: () => number;
  readonly #entries: Entry[] = [];
  /** Weight of every request recorded, sampled or not. */
  totalWeight = 0;
  requests = 0;

  constructor(capacity = 20, random: () => number = Math.random) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('a key sample needs a capacity of at least 1');
    this.capacity = capacity;
    this.#random = random;
  }

  record(span: KeySpan, weight: number): void {
    if (!(weight > 0)) return;
    this.totalWeight += weight;
    this.requests++;
    for (const entry of this.#entries) {
      if (span.end === undefined && span.unboundedEnd !== true) {
        if (compareBytes(span.start, entry.key) < 0) entry.leftWeight += weight;
        else entry.rightWeight += weight;
      } else if (span.unboundedEnd !== true && span.end !== undefined && compareBytes(span.end, entry.key) <= 0) entry.leftWeight += weight;
      else if (compareBytes(span.start, entry.key) >= 0) entry.rightWeight += weight;
      else entry.spanningWeight += weight;
    }
    // A-Res: keep the `capacity` largest u^(1/w), compared as log(u)/w.
    const priority = Math.log(1 - this.#random()) / weight;
    if (this.#entries.length < this.capacity) {
      this.#entries.push({ key: span.start, weight, leftWeight: 0, rightWeight: 0, spanningWeight: 0, priority });
      return;
    }
    let lowest = 0;
    for (let i = 1; i < this.#entries.length; i++) if (this.#entries[i].priority < this.#entries[lowest].priority) lowest = i;
    if (priority > this.#entries[lowest].priority) this.#entries[lowest] = { key: span.start, weight, leftWeight: 0, rightWeight: 0, spanningWeight: 0, priority };
  }

  /** The sampled keys in key order. */
  keys(): SampledKeyLoad[] {
    return this.#entries
      .map(({ key, weight, leftWeight, rightWeight, spanningWeight }) => ({ key, weight, leftWeight, rightWeight, spanningWeight }))
      .sort((a, b) => compareBytes(a.key, b.key));
  }
}
