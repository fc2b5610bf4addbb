/**
 * A seeded simulation of a correct (linearizable) key-value store, producing the kind of history a
 * test client records: overlapping operations from many clients over many keys, some of them
 * timing out. Used by tests and the benchmark to have large histories whose verdict is known.
 */
import type { KvOperation } from './history.ts';

export interface SimulationOptions {
  seed: number;
  operations: number;
  keys: number;
  clients: number;
  /** Share of keys used as list registers (append/read-list); the rest are registers. Default 0.25. */
  listKeyShare?: number;
  /** Share of operations whose outcome the client never learns. Default 0.02. */
  indeterminateRate?: number;
}

/** mulberry32: small, fast, good enough for test data. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The longest a simulated request takes before its client gives up on it. */
const CLIENT_TIMEOUT = 12;

interface PlannedOperation {
  process: number;
  key: string;
  type: KvOperation['type'];
  call: number;
  return: number | undefined;
  /** When the operation takes effect; undefined if it never does (a lost timed-out request). */
  effectAt: number | undefined;
}

export function simulateKvHistory(options: SimulationOptions): KvOperation[] {
  const random = seededRandom(options.seed);
  const randomInt = (below: number): number => Math.floor(random() * below);
  const listKeyShare = options.listKeyShare ?? 0.25;
  const indeterminateRate = options.indeterminateRate ?? 0.02;
  const keys = Array.from({ length: options.keys }, (_, i) => ({ name: `k${i}`, isList: random() < listKeyShare }));
  const clocks = new Array<number>(options.clients).fill(0);

  // First the shape of each operation (who, which key, when); values are chosen in effect order.
  const plan: PlannedOperation[] = [];
  for (let n = 0; n < options.operations; n++) {
    let process = 0;
    for (let c = 1; c < clocks.length; c++) if (clocks[c] < clocks[process]) process = c;
    const key = keys[randomInt(keys.length)];
    const call = clocks[process] + randomInt(3);
    const latency = 1 + randomInt(CLIENT_TIMEOUT - 1);
    const roll = random();
    const type: KvOperation['type'] = key.isList
      ? roll < 0.5 ? 'append' : 'read-list'
      : roll < 0.4 ? 'put' : roll < 0.8 ? 'get' : 'cas';
    if (random() < indeterminateRate) {
      // A timed-out request may still land much later, or be lost.
      const effectAt = random() < 0.5 ? call + random() * 20 * CLIENT_TIMEOUT : undefined;
      plan.push({ process, key: key.name, type, call, return: undefined, effectAt });
      clocks[process] = call + CLIENT_TIMEOUT;
    } else {
      plan.push({ process, key: key.name, type, call, return: call + latency, effectAt: call + random() * latency });
      clocks[process] = call + latency;
    }
  }

  const registers = new Map<string, string | null>();
  const writtenValues = new Map<string, string[]>();
  const lists = new Map<string, string[]>();
  let sequence = 0;
  const history: KvOperation[] = [];
  const byEffect = [...plan].sort((a, b) => (a.effectAt ?? a.call) - (b.effectAt ?? b.call));
  for (const planned of byEffect) {
    const { process, key, call, effectAt } = planned;
    const timing = planned.return === undefined ? { process, key, call } : { process, key, call, return: planned.return };
    const known = planned.return !== undefined;
    const current = registers.get(key) ?? null;
    const list = lists.get(key) ?? [];
    const written = writtenValues.get(key) ?? [];
    const value = `${key}:${sequence++}`;
    switch (planned.type) {
      case 'put':
        history.push({ ...timing, type: 'put', value });
        if (effectAt !== undefined) registers.set(key, value);
        break;
      case 'get':
        history.push(known ? { ...timing, type: 'get', output: current } : { ...timing, type: 'get' });
        break;
      case 'cas': {
        const expected = random() < 0.6 || written.length === 0 ? current : written[randomInt(written.length)];
        const succeeds = effectAt !== undefined && current === expected;
        history.push({ ...timing, type: 'cas', expected, value, ...(known ? { ok: succeeds } : {}) });
        if (succeeds) registers.set(key, value);
        break;
      }
      case 'append':
        history.push({ ...timing, type: 'append', value });
        if (effectAt !== undefined) lists.set(key, [...list, value]);
        break;
      case 'read-list':
        history.push(known ? { ...timing, type: 'read-list', output: list } : { ...timing, type: 'read-list' });
        break;
    }
    if (registers.get(key) === value) {
      written.push(value);
      writtenValues.set(key, written);
    }
  }
  return history.sort((a, b) => a.call - b.call);
}
