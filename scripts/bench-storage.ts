/**
 * Single-node storage throughput: PutItem-shaped writes and GetItem-shaped reads against a real
 * LevelDB, with and without fsync, at several concurrencies (concurrent writes share one batch and
 * one fsync: group commit).
 *
 *   npx node scripts/bench-storage.ts [operations per run, default 20000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Item, TableSchema } from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';

const operations = Number(process.argv[2] ?? 20_000);
const schema: TableSchema = {
  name: 'bench',
  tableId: 1,
  hashKey: { name: 'pk', type: 'S' },
  rangeKey: { name: 'sk', type: 'N' },
  indexes: [],
};

function item(i: number): Item {
  return {
    pk: { S: `user-${i % 1000}` },
    sk: { N: String(i) },
    name: { S: `name ${i}` },
    score: { N: String(i * 1.5) },
    tags: { SS: ['a', 'b', 'c'] },
    payload: { S: 'x'.repeat(150) },
  };
}

async function measure(label: string, concurrency: number, total: number, op: (i: number) => Promise<unknown>): Promise<void> {
  const latencies = new Float64Array(total);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) {
        const t = performance.now();
        await op(i);
        latencies[i] = performance.now() - t;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort();
  const percentile = (p: number) => latencies[Math.min(total - 1, Math.floor(total * p))].toFixed(2);
  console.log(
    `${label.padEnd(34)} concurrency ${String(concurrency).padStart(3)}  ${String(Math.round(total / seconds)).padStart(7)} ops/s  p50 ${percentile(0.5)} ms  p99 ${percentile(0.99)} ms`,
  );
}

async function withStore(sync: boolean, run: (store: LocalStore) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'shoal-bench-storage-'));
  const store = await openLocalStore({ dataDir, sync });
  try {
    await run(store);
  } finally {
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const put = (store: LocalStore, i: number) =>
  store.partitions.write({ operations: [{ table: schema, kind: 'Put', key: { pk: item(i).pk, sk: item(i).sk }, item: item(i) }] });

console.log(`${operations} operations per run, item of ${JSON.stringify(item(1)).length} bytes of JSON`);
{
  // What storing items as JSON costs per item, next to the rates below.
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const rounds = 100_000;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) JSON.parse(decoder.decode(encoder.encode(JSON.stringify(item(i)))));
  console.log(`JSON encode + decode of one item: ${(((performance.now() - started) * 1000) / rounds).toFixed(2)} µs`);
}
for (const sync of [false, true]) {
  for (const concurrency of [1, 16, 64]) {
    // fsync'd writes one at a time are slow: fewer of them keep the run short.
    const total = sync && concurrency === 1 ? Math.min(operations, 500) : operations;
    await withStore(sync, (store) => measure(`put sync=${sync}`, concurrency, total, (i) => put(store, i)));
  }
}
await withStore(false, async (store) => {
  for (let i = 0; i < operations; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, operations - i) }, (_, j) => put(store, i + j)));
  }
  for (const concurrency of [1, 16, 64]) {
    await measure('get', concurrency, operations, (i) =>
      store.partitions.get({ table: schema, key: { pk: item((i * 7919) % operations).pk, sk: item((i * 7919) % operations).sk } }, { consistent: true }),
    );
  }
  await measure('query 10 items', 16, Math.floor(operations / 10), (i) =>
    store.partitions.readRange(
      { table: schema, hashValue: { S: `user-${i % 1000}` }, forward: true, limit: 10, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' },
      { consistent: true },
    ),
  );
});
