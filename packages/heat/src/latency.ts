/** Latencies in a log-scale histogram (8 buckets per doubling, from 10 µs): percentiles within ~9%. */
const BUCKETS_PER_DOUBLING = 8;
const FLOOR_MS = 0.01;
const BUCKETS = 8 * 30;

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  count = 0;

  add(ms: number): void {
    const index = ms <= FLOOR_MS ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(ms / FLOOR_MS) * BUCKETS_PER_DOUBLING));
    this.#counts[index]++;
    this.count++;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i] += other.#counts[i];
    this.count += other.count;
  }

  /** The latency under which `p` (0..1) of the samples fell (the bucket's upper bound); 0 when empty. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return FLOOR_MS * 2 ** ((i + 1) / BUCKETS_PER_DOUBLING);
    }
    return FLOOR_MS * 2 ** (BUCKETS / BUCKETS_PER_DOUBLING);
  }
}
