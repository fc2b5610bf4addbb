/**
 * A sum over a sliding window of time, kept in fixed buckets (the oldest is dropped as time moves
 * on), read as a per-second rate. Time is passed in (ms), so tests drive it.
 */
export class SlidingRate {
  readonly #bucketMs: number;
  readonly #buckets: Float64Array;
  /** Index of the bucket time `#head * bucketMs` falls in; buckets before it by up to the window. */
  #head = -1;
  #startedAt: number | undefined;

  constructor(windowMs: number, buckets = 10) {
    if (!(windowMs > 0) || !Number.isInteger(buckets) || buckets < 1) throw new RangeError('a sliding window needs a positive length and bucket count');
    this.#bucketMs = windowMs / buckets;
    this.#buckets = new Float64Array(buckets);
  }

  add(amount: number, now: number): void {
    this.#advance(now);
    this.#buckets[this.#head % this.#buckets.length] += amount;
  }

  /** The sum over the window ending now, per second of the time it covers (less than the window just after the start). */
  perSecond(now: number): number {
    this.#advance(now);
    if (this.#startedAt === undefined) return 0;
    let sum = 0;
    for (const value of this.#buckets) sum += value;
    const windowMs = this.#bucketMs * this.#buckets.length;
    // The current bucket is partly elapsed: the window covers (buckets - 1) whole ones plus that part.
    const covered = Math.min(windowMs - this.#bucketMs + (now - this.#head * this.#bucketMs), now - this.#startedAt);
    return covered <= 0 ? 0 : (sum * 1000) / Math.max(covered, this.#bucketMs);
  }

  #advance(now: number): void {
    const index = Math.floor(now / this.#bucketMs);
    this.#startedAt ??= now;
    if (this.#head < 0) {
      this.#head = index;
      return;
    }
    if (index <= this.#head) return;
    const size = this.#buckets.length;
    for (let i = this.#head + 1; i <= index && i <= this.#head + size; i++) this.#buckets[i % size] = 0;
    this.#head = index;
  }
}
