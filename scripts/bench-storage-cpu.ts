/**
 * CPU per operation of the storage engine alone (no HTTP): the bench's PutItem and GetItem shapes
 * (1 KB items over 10,000 keys, overwritten at random, 64 in flight) through openLocalStore on a real
 * LevelDB without fsync. It prints the process's CPU time per operation (all threads: LevelDB's and
 * V8's included), which a machine shared with other work disturbs far less than ops/s.
 *
 *   npx node scripts/bench-storage-cpu.ts [operations per phase, default 100000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Item, TableSchema } from '@shoal/model';
import { seededRandom } from '@shoal/linearizability';
import { openLocalStore } from '@shoal/storage';

const operations = Number(process.argv[2] ?? 100_000);
const KEYS = 10_000;
const CONCURRENCY = 64;
const schema: TableSchema = { name: 'bench', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const payload = 'x'.repeat(1010);
const item = (k: number): Item => ({ pk: { S: `k${k}` }, payload: { S: payload } });

const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-storage-cpu-'));
const store = await openLocalStore({ dataDir: dir });
const random = seededRandom(7);

async function run(total: number, op: (k: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < total; i = next++) await op(Math.floor(random() * KEYS));
    }),
  );
}

const put = (k: number) => store.partitions.write({ operations: [{ table: schema, kind: 'Put', key: { pk: { S: `k${k}` } }, item: item(k) }] });
const get = (k: number) => store.partitions.get({ table: schema, key: { pk: { S: `k${k}` } } });

try {
  for (let k = 0; k < KEYS; k++) await put(k);
  for (const [name, op] of [['put', put], ['get', get]] as const) {
    await run(Math.ceil(operations / 3), op); // warm-up: the JIT compiles the path
    const cpu = process.cpuUsage();
    const started = performance.now();
    await run(operations, op);
    const used = process.cpuUsage(cpu);
    const seconds = (performance.now() - started) / 1000;
    console.log(`${name}: ${((used.user + used.system) / operations).toFixed(1)} µs CPU/op, ${(operations / seconds).toFixed(0)} ops/s`);
  }
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
