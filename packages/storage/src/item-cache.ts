/**
 * An item's stored JSON text, and its size once someone measured it (its writer, or a read reporting
 * consumed capacity): a write replacing the item counts the bytes it frees without parsing it.
 */
export interface CachedItem {
  readonly json: string;
  size: number | undefined;
}

/**
 * The JSON text of values read or written lately (items, index entries), by key (mapKey): a GetItem,
 * or the read of the item a write replaces, served from here skips LevelDB's lookup (a native call
 * costing several µs even from its block cache) and the UTF-8 decoding of the value. The commit
 * queue keeps it (CommitQueue.durableText) so that it holds what the database holds. Bounded by the
 * characters it holds; the oldest entries go first.
 */
export class ItemCache {
  private readonly entries = new Map<string, CachedItem>();
  private readonly capacity: number;
  private size = 0;

  /** `capacity`: characters of keys and texts held at most. */
  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get(key: string): CachedItem | undefined {
    return this.entries.get(key);
  }

  /**
   * Holds `json` (with its item size, when known) under `key`, unless it is over a sixteenth of the
   * capacity; answers the entry either way.
   */
  set(key: string, json: string, itemSize?: number): CachedItem {
    const entry: CachedItem = { json, size: itemSize };
    const characters = key.length + json.length;
    // Whatever was held goes even when the new text is not kept: it is no longer the key's value.
    this.delete(key);
    if (characters > this.capacity / 16) return entry; // a few huge items must not flush everything else
    this.entries.set(key, entry);
    this.size += characters;
    if (this.size > this.capacity) this.evict();
    return entry;
  }

  /** Drops the oldest entries until the cache is within its capacity. */
  private evict(): void {
    for (const [oldest, held] of this.entries) {
      if (this.size <= this.capacity) break;
      this.entries.delete(oldest);
      this.size -= oldest.length + held.json.length;
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.size -= key.length + entry.json.length;
  }

  /** Characters held (keys and texts). */
  get heldCharacters(): number {
    return this.size;
  }
}
