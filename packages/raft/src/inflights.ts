/**
 * The window of MsgApp messages in flight to one follower, bounded by count and by payload bytes.
 * Each element is the last log index of a message and its payload size; acknowledgements free a
 * prefix. A ring buffer, since it is on the replication hot path.
 */
export class Inflights {
  /** Maximum number of messages in flight. */
  readonly capacity: number;
  /** Maximum payload bytes in flight (Infinity: no byte bound). */
  readonly maxBytes: number;
  private start = 0;
  private length = 0;
  private totalBytes = 0;
  private indexes: number[] = [];
  private sizes: number[] = [];

  constructor(capacity: number, maxBytes: number) {
    this.capacity = capacity;
    this.maxBytes = maxBytes;
  }

  get count(): number {
    return this.length;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Records a message whose last entry is `index`. Indexes must increase. */
  add(index: number, bytes: number): void {
    if (this.full()) throw new Error('cannot add into a full inflights window');
    let slot = this.start + this.length;
    if (slot >= this.capacity) slot -= this.capacity;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.length++;
    this.totalBytes += bytes;
  }

  /** Frees every message whose last index is <= `to`. */
  freeLE(to: number): void {
    while (this.length > 0 && this.indexes[this.start] <= to) {
      this.totalBytes -= this.sizes[this.start];
      this.start++;
      if (this.start === this.capacity) this.start = 0;
      this.length--;
    }
    if (this.length === 0) this.start = 0;
  }

  /** Frees the oldest message (used to unstick a full window when heartbeats show liveness). */
  freeFirstOne(): void {
    if (this.length > 0) this.freeLE(this.indexes[this.start]);
  }

  full(): boolean {
    return this.length === this.capacity || this.totalBytes >= this.maxBytes;
  }

  reset(): void {
    this.start = 0;
    this.length = 0;
    this.totalBytes = 0;
  }

  /** The last indexes in flight, oldest first (for status and tests). */
  toArray(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.indexes[(this.start + i) % this.capacity]);
    return out;
  }
}
