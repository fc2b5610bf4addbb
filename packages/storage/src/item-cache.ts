/**
 * The JSON text of items read lately, by item key (mapKey): a GetItem served from here skips
 * LevelDB's lookup (a native call costing several µs even from its block cache) and the UTF-8
 * decoding of the value. The store drops every key a batch writes once the batch is in the database
 * (CommitQueue.onWritten), and fills it only from what the database holds, so it never answers
 * what the database would not. Bounded by the characters it holds; the oldest entries go first.
 */
export class ItemCache {
  private readonly entries = new Map<string, string>();
  private readonly capacity: number;
  private size = 0;

  /** `capacity`: characters of keys and texts held at most. */
  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get(key: string): string | undefined {
    return this.entries.get(key);
  }

  set(key: string, json: string): void {
    const size = key.length + json.length;
    if (size > this.capacity / 16) return; // a few huge items must not flush everything else
    this.delete(key);
    this.entries.set(key, json);
    this.size += size;
    for (const [oldest, text] of this.entries) {
      if (this.size <= this.capacity) break;
      this.entries.delete(oldest);
      this.size -= oldest.length + text.length;
    }
  }

  delete(key: string): void {
    const json = this.entries.get(key);
    if (json === undefined) return;
    this.entries.delete(key);
    this.size -= key.length + json.length;
  }

  /** Characters held (keys and texts). */
  get heldCharacters(): number {
    return this.size;
  }
}
