/**
 * A push-fed AsyncIterable with one consumer: the sending side of a long-lived stream, where messages
 * are produced as events happen (e.g. each Ready round of the Raft groups) rather than by a loop.
 */
export class MessageQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #head = 0;
  #closed = false;
  #wake: (() => void) | undefined;

  /** Messages pushed and not yet taken by the consumer. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    if (this.#closed) throw new Error('push on a closed MessageQueue');
    this.#items.push(item);
    this.#wakeConsumer();
  }

  /** Ends the iteration once the queued messages are taken. */
  close(): void {
    this.#closed = true;
    this.#wakeConsumer();
  }

  #wakeConsumer(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.#head < this.#items.length) {
        const item = this.#items[this.#head];
        this.#head += 1;
        // Drop the consumed prefix now and then so a long-lived queue does not grow without bound.
        if (this.#head === this.#items.length || this.#head > 1024) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        yield item as T;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }
}
