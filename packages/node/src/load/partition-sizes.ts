/**
 * The size of each partition this node leads, measured now and then: a read of the partition's
 * range (the store keeps counts per table, not per partition), so it runs in the background every
 * `intervalMs` (DynamoDB's own sizes are periodic too), one partition at a time, and the heartbeat
 * reports the last measure. A split for size reads it.
 */
import type { NodeLoad } from './partition-load.ts';

export interface PartitionSizeSource {
  /** The partitions this node leads now. */
  ledPartitions(): number[];
  /** Bytes of a partition's items; undefined when it cannot be measured here (no schema, gone). */
  measure(partitionId: number): Promise<number | undefined>;
}

export class PartitionSizes {
  readonly #load: NodeLoad;
  readonly #source: PartitionSizeSource;
  readonly #intervalMs: number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(load: NodeLoad, source: PartitionSizeSource, intervalMs: number, onError: (error: unknown) => void) {
    this.#load = load;
    this.#source = source;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.measureAll().finally(() => {
        this.#running = undefined;
      });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Measures every partition led here, one after the other. */
  async measureAll(): Promise<void> {
    for (const partitionId of this.#source.ledPartitions()) {
      if (this.#stopped) return;
      try {
        const bytes = await this.#source.measure(partitionId);
        if (bytes !== undefined) this.#load.of(partitionId).sizeBytes = bytes;
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
