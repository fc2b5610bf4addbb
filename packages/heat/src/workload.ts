/**
 * The keys a workload touches, over a table keyed by `pk` (string) and `sk` (number): each kind picks
 * the next request's key (seeded, so a run repeats) and whether it reads or writes.
 *   uniform         any of `keys` item collections alike
 *   zipfian         collections by a Zipf law of skew theta (YCSB's generator, Gray et al.)
 *   hot-range       90% into one item collection's sort key range (a sort-key split relieves it)
 *   hot-item        90% on one item (no split relieves it)
 *   moving-hotspot  90% into one collection, another every `moveEveryMs`
 *   time-series     writes append to the current time bucket's collection, reads take recent ones
 */
import { seededRandom } from '@shoal/node';
import type { HeatOptions, WorkloadKind } from './options.ts';

export interface RequestKey {
  pk: string;
  sk: number;
}

export interface PlannedRequest {
  kind: 'read' | 'write';
  key: RequestKey;
}

const HOT_SHARE = 0.9;
const TIME_BUCKET_MS = 60_000;

/** Zipf-distributed ranks in [0, n): rank 0 the most frequent (YCSB's ZipfianGenerator). */
export class Zipfian {
  readonly #n: number;
  readonly #theta: number;
  readonly #alpha: number;
  readonly #zetan: number;
  readonly #eta: number;
  readonly #random: () => number;

  constructor(n: number, theta: number, random: () => number) {
    // The closed form divides by 1 - theta.
    const t = Math.abs(theta - 1) < 1e-6 ? 1 - 1e-6 : theta;
    this.#n = n;
    this.#theta = t;
    this.#random = random;
    let zetan = 0;
    for (let i = 1; i <= n; i++) zetan += 1 / i ** t;
    const zeta2 = 1 + 1 / 2 ** t;
    this.#zetan = zetan;
    this.#alpha = 1 / (1 - t);
    this.#eta = (1 - (2 / n) ** (1 - t)) / (1 - zeta2 / zetan);
  }

  next(): number {
    const u = this.#random();
    const uz = u * this.#zetan;
    if (uz < 1) return 0;
    if (uz < 1 + 0.5 ** this.#theta) return Math.min(1, this.#n - 1);
    return Math.min(this.#n - 1, Math.floor(this.#n * (this.#eta * u - this.#eta + 1) ** this.#alpha));
  }
}

export class Workload {
  readonly kind: WorkloadKind;
  readonly #options: Pick<HeatOptions, 'keys' | 'reads' | 'skew' | 'moveEveryMs'>;
  readonly #random: () => number;
  readonly #zipf: Zipfian | undefined;
  /** Appends so far per time bucket (time-series). */
  #appended = 0;
  #bucket = -1;

  constructor(kind: WorkloadKind, options: Pick<HeatOptions, 'keys' | 'reads' | 'skew' | 'moveEveryMs'>, seed: number) {
    this.kind = kind;
    this.#options = options;
    this.#random = seededRandom(seed);
    this.#zipf = kind === 'zipfian' ? new Zipfian(options.keys, options.skew, this.#random) : undefined;
  }

  /** The next request, `elapsedMs` into the run (`now` is wall time, for time buckets). */
  next(elapsedMs: number, now = Date.now()): PlannedRequest {
    const kind = this.#random() < this.#options.reads ? 'read' : 'write';
    return { kind, key: this.#key(kind, elapsedMs, now) };
  }

  #uniform(): RequestKey {
    return { pk: `k${this.#int(this.#options.keys)}`, sk: 0 };
  }

  #int(n: number): number {
    return Math.floor(this.#random() * n);
  }

  #key(kind: 'read' | 'write', elapsedMs: number, now: number): RequestKey {
    const keys = this.#options.keys;
    const hot = this.#random() < HOT_SHARE;
    switch (this.kind) {
      case 'uniform':
        return this.#uniform();
      case 'zipfian':
        return { pk: `k${this.#zipf!.next()}`, sk: 0 };
      case 'hot-range':
        return hot ? { pk: 'range', sk: this.#int(keys) } : this.#uniform();
      case 'hot-item':
        return hot ? { pk: 'hot', sk: 0 } : this.#uniform();
      case 'moving-hotspot':
        return hot ? { pk: `spot${Math.floor(elapsedMs / this.#options.moveEveryMs)}`, sk: this.#int(keys) } : this.#uniform();
      case 'time-series': {
        const bucket = Math.floor(now / TIME_BUCKET_MS);
        if (bucket !== this.#bucket) {
          this.#bucket = bucket;
          this.#appended = 0;
        }
        if (kind === 'write') return { pk: `ts${bucket}`, sk: this.#appended++ };
        // Reads look at the last hundred appends.
        return { pk: `ts${bucket}`, sk: Math.max(0, this.#appended - 1 - this.#int(100)) };
      }
    }
  }
}
