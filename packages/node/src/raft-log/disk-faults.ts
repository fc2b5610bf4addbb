/**
 * TEST ONLY: disk faults of one node's Raft log, for chaos tests. `beforeWrite` is the log store's
 * hook (RaftLogStoreOptions.beforeWrite): a slow disk makes every batch (and so its fsync) wait
 * first, a full one makes it fail with ENOSPC as LevelDB's write would, after which the store (and
 * the Raft host above it) stop until the node restarts, as after any real failed write.
 */
export type DiskFaultMode = 'none' | 'slow' | 'full';

export class DiskFaults {
  #mode: DiskFaultMode = 'none';
  #delayMs = 0;

  get mode(): DiskFaultMode {
    return this.#mode;
  }

  get delayMs(): number {
    return this.#delayMs;
  }

  /** Every later write waits `ms` first. */
  slow(ms: number): void {
    if (!(ms > 0)) throw new RangeError(`a slow disk needs a positive delay, got ${ms}`);
    this.#mode = 'slow';
    this.#delayMs = ms;
  }

  /** Every later write fails with ENOSPC. */
  full(): void {
    this.#mode = 'full';
    this.#delayMs = 0;
  }

  heal(): void {
    this.#mode = 'none';
    this.#delayMs = 0;
  }

  readonly beforeWrite = async (): Promise<void> => {
    if (this.#mode === 'slow') await new Promise((resolve) => setTimeout(resolve, this.#delayMs));
    if (this.#mode === 'full') throw Object.assign(new Error('ENOSPC: no space left on device (injected by fault injection)'), { code: 'ENOSPC' });
  };
}
