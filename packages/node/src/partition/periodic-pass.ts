/**
 * A background pass a node runs every so often and on demand (the index shipper, the backfill driver,
 * the transaction resolver): one at a time (a call while one runs joins it), its timer unref'd (it
 * never keeps the process alive), and closing stops the timer and waits for the pass under way.
 */
export interface PeriodicPassOptions {
  intervalMs: number;
  /** A pass the timer started failed (a caller of `run` gets its own pass's failure). */
  onError(error: unknown): void;
}

export class PeriodicPass<T> {
  readonly #pass: () => Promise<T>;
  readonly #options: PeriodicPassOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<T> | undefined;
  #closed = false;

  constructor(pass: () => Promise<T>, options: PeriodicPassOptions) {
    this.#pass = pass;
    this.#options = options;
  }

  /** Runs the pass every `intervalMs` from now on (until closed). */
  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.run().catch((error: unknown) => this.#options.onError(error)), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** One pass now, or the one under way. */
  run(): Promise<T> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** No pass starts from the timer any more; resolves once the one under way ended (its failure is its caller's). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }
}
