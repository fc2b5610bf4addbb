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
  /** The sampled entries, each in the slot it took (replaced in place). */
  readonly #entries: Entry[] = [];
  /** The same entries in key order: a request's key splits them by two binary searches, not one comparison each. */
  readonly #byKey: Entry[] = [];
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
    // In key order: the entries at or below the start are right of the request, those at or past
    // its end (past its key, for one key) left of it, the ones between spanned by it.
    const byKey = this.#byKey;
    const single = span.end === undefined && span.unboundedEnd !== true;
    const leftFrom = single ? this.#firstAbove(span.start) : span.unboundedEnd === true || span.end === undefined ? byKey.length : this.#firstAtOrAbove(span.end);
    const rightTo = single ? leftFrom : Math.min(this.#firstAbove(span.start), leftFrom);
    for (let i = 0; i < rightTo; i++) (byKey[i] as Entry).rightWeight += weight;
    for (let i = rightTo; i < leftFrom; i++) (byKey[i] as Entry).spanningWeight += weight;
    for (let i = leftFrom; i < byKey.length; i++) (byKey[i] as Entry).leftWeight += weight;
    // A-Res: keep the `capacity` largest u^(1/w), compared as log(u)/w.
    const priority = Math.log(1 - this.#random()) / weight;
    const entry: Entry = { key: span.start, weight, leftWeight: 0, rightWeight: 0, spanningWeight: 0, priority };
    if (this.#entries.length < this.capacity) {
      this.#entries.push(entry);
      this.#insertByKey(entry);
      return;
    }
    let lowest = 0;
    for (let i = 1; i < this.#entries.length; i++) if ((this.#entries[i] as Entry).priority < (this.#entries[lowest] as Entry).priority) lowest = i;
    const replaced = this.#entries[lowest] as Entry;
    if (priority <= replaced.priority) return;
    this.#entries[lowest] = entry;
    byKey.splice(byKey.indexOf(replaced), 1);
    this.#insertByKey(entry);
  }

  /** The first position in key order whose key is above `key`. */
  #firstAbove(key: Uint8Array): number {
    let low = 0;
    let high = this.#byKey.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareBytes((this.#byKey[middle] as Entry).key, key) <= 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The first position in key order whose key is at or above `key`. */
  #firstAtOrAbove(key: Uint8Array): number {
    let low = 0;
    let high = this.#byKey.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareBytes((this.#byKey[middle] as Entry).key, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #insertByKey(entry: Entry): void {
    this.#byKey.splice(this.#firstAbove(entry.key), 0, entry);
  }

  /** The sampled keys in key order. */
  keys(): SampledKeyLoad[] {
    return this.#entries
      .map(({ key, weight, leftWeight, rightWeight, spanningWeight }) => ({ key, weight, leftWeight, rightWeight, spanningWeight }))
      .sort((a, b) => compareBytes(a.key, b.key));
  }
}
