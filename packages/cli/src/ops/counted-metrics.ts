import type { Labels, Series } from './metrics.ts';

/**
 * Counters and histograms of the router's per-request metrics, counted in plain numbers: each label
 * set is resolved once to its own counts (a `Map` lookup or a field read per request, where a
 * prom-client metric hashes its label object on every observation), and exported at scrape time as
 * `Series` (createProcessMetrics: histograms through histogramText, counters as prom-client
 * counters). A label set never observed is not exported, as prom-client does.
 */

/** One label set's running total. */
export class CountedValue {
  value = 0;

  inc(): void {
    this.value++;
  }
}

/** A counter by label set (the label values in `labelNames` order). */
export class CountedCounter {
  readonly #name: string;
  readonly #help: string;
  readonly #labelNames: readonly string[];
  readonly #values = new Map<string, { labels: Labels; counted: CountedValue }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.#name = name;
    this.#help = help;
    this.#labelNames = labelNames;
  }

  /** The count of these label values, made on first use. */
  labels(...values: string[]): CountedValue {
    const key = values.join('\u0000');
    let entry = this.#values.get(key);
    if (entry === undefined) {
      const labels: Labels = {};
      this.#labelNames.forEach((name, position) => (labels[name] = values[position] ?? ''));
      entry = { labels, counted: new CountedValue() };
      this.#values.set(key, entry);
    }
    return entry.counted;
  }

  series(): Series {
    const samples = [...this.#values.values()].filter(({ counted }) => counted.value > 0).map(({ labels, counted }) => ({ labels, value: counted.value }));
    return { type: 'counter', name: this.#name, help: this.#help, labelNames: this.#labelNames, samples };
  }
}

/** One label set's buckets: `counts[i]` observations in bucket i alone, the last one above every bound. */
export class CountedBuckets {
  readonly counts: Float64Array;
  sum = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let bucket = 0;
    // A bound is inclusive (`le`), as in Prometheus; a dozen bounds: a linear walk.
    while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++;
    this.counts[bucket] = (this.counts[bucket] as number) + 1;
    this.sum += value;
  }

  get count(): number {
    return this.counts.reduce((total, count) => total + count, 0);
  }
}

/** A histogram by the values of one label. */
export class CountedHistogram {
  readonly #name: string;
  readonly #help: string;
  readonly #labelName: string;
  readonly #bounds: readonly number[];
  readonly #buckets = new Map<string, CountedBuckets>();

  constructor(name: string, help: string, labelName: string, bounds: readonly number[]) {
    this.#name = name;
    this.#help = help;
    this.#labelName = labelName;
    this.#bounds = bounds;
  }

  /** The buckets of this label value, made on first use. */
  labels(value: string): CountedBuckets {
    let buckets = this.#buckets.get(value);
    if (buckets === undefined) {
      buckets = new CountedBuckets(this.#bounds);
      this.#buckets.set(value, buckets);
    }
    return buckets;
  }

  series(): Series {
    const samples = [...this.#buckets]
      .filter(([, buckets]) => buckets.count > 0)
      .map(([value, buckets]) => ({ labels: { [this.#labelName]: value }, counts: [...buckets.counts], sum: buckets.sum }));
    return { type: 'histogram', name: this.#name, help: this.#help, buckets: this.#bounds, samples };
  }
}
