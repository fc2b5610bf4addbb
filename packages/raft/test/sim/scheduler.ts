/**
 * Simulated time and a discrete-event queue. Events at the same instant run in the order they were
 * scheduled, so a run never depends on heap internals.
 */
export type SimAction = () => void;

interface SimEvent {
  time: number;
  order: number;
  action: SimAction;
}

export class Scheduler {
  /** Simulated milliseconds since the start of the run. */
  now = 0;
  private readonly heap: SimEvent[] = [];
  private nextOrder = 0;
  private executed = 0;

  /** Events run so far. */
  get eventsRun(): number {
    return this.executed;
  }

  at(time: number, action: SimAction): void {
    if (time < this.now) throw new RangeError(`cannot schedule at ${time}, now is ${this.now}`);
    this.push({ time, order: this.nextOrder++, action });
  }

  after(delay: number, action: SimAction): void {
    this.at(this.now + Math.max(0, delay), action);
  }

  /** Runs events up to and including `endTime`, or until `stop` says so; the clock ends at `endTime` unless stopped. */
  runUntil(endTime: number, stop?: () => boolean): void {
    while (this.heap.length > 0 && this.heap[0].time <= endTime) {
      const event = this.pop();
      this.now = event.time;
      this.executed++;
      event.action();
      if (stop?.()) return;
    }
    this.now = Math.max(this.now, endTime);
  }

  private push(event: SimEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  private pop(): SimEvent {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && before(heap[left], heap[smallest])) smallest = left;
        if (right < heap.length && before(heap[right], heap[smallest])) smallest = right;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.order < b.order);
}
