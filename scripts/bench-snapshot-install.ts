/**
 * Installing a partition snapshot of a given size as a receiving replica does: the payload staged in
 * a file (written here directly in the wire form: node header, store header, pairs of 1 KB items),
 * then PartitionReplica.installSnapshot into a store holding nothing of the partition. Reports the
 * seconds the install took and the RSS of the process installing (one of its own, the payload written
 * before it starts) before the install and at its peak.
 *
 *   npx node scripts/bench-snapshot-install.ts [MiB, default 256]
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { encodeItemKey, initialPartitions, type Item, type TableSchema } from '@shoal/model';
import { openLocalStore, partitionBound } from '@shoal/storage';
import { PartitionReplica } from '@shoal/node';
import { encodePartitionPayloadHeader } from '../packages/node/src/partition/partition-snapshot.ts';

const mib = Number(process.argv[2] === '--install' ? 0 : (process.argv[2] ?? 256));
const TABLE: TableSchema = { name: 'bench', tableId: 90, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const [PARTITION] = initialPartitions(TABLE.tableId, 1, 1);
const ITEM_PAD = 'x'.repeat(1_000);

const u32 = (value: number): Buffer => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
};

/** Writes the payload (about `mib` MiB of items) to `path`; answers its size and item count. */
async function writePayload(path: string): Promise<{ size: number; items: number }> {
  const out = createWriteStream(path);
  let size = 0;
  const write = async (bytes: Buffer): Promise<void> => {
    size += bytes.length;
    if (!out.write(bytes)) await once(out, 'drain');
  };
  await write(Buffer.from(encodePartitionPayloadHeader({ bound: partitionBound(PARTITION), splits: [], table: TABLE })));
  const header = Buffer.from(JSON.stringify({ format: 'shoal-partition-snapshot-1', groupId: PARTITION.id, appliedIndex: 1_000 }));
  await write(Buffer.concat([u32(header.length), header]));
  let items = 0;
  let piece: Buffer[] = [];
  let pieceBytes = 0;
  while (size + pieceBytes < mib * 1024 * 1024) {
    const item: Item = { pk: { S: `item-${items}` }, n: { N: String(items) }, pad: { S: ITEM_PAD } };
    const key = Buffer.from(encodeItemKey(TABLE.tableId, item.pk));
    const value = Buffer.from(JSON.stringify(item));
    piece.push(u32(key.length), key, u32(value.length), value);
    pieceBytes += 8 + key.length + value.length;
    items++;
    if (pieceBytes >= 1024 * 1024) {
      await write(Buffer.concat(piece));
      piece = [];
      pieceBytes = 0;
    }
  }
  if (piece.length > 0) await write(Buffer.concat(piece));
  out.end();
  await once(out, 'finish');
  return { size, items };
}

/** In a process of its own (so its peak RSS is the install's): installs the payload at `path` into a new store in `dir`. */
async function install(dir: string, path: string, items: number): Promise<void> {
  const size = (await stat(path)).size;
  const local = await openLocalStore({ dataDir: join(dir, 'store'), sync: false });
  const replica = await PartitionReplica.open(PARTITION.id, local.partitions, { boundOf: () => partitionBound(PARTITION), tableOf: () => TABLE });
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  await replica.installSnapshot({ index: 10, data: await replica.snapshot(), payload: { path, offset: 0, size } });
  const seconds = (performance.now() - started) / 1000;
  const peakRss = process.resourceUsage().maxRSS * 1024;
  const stored = await local.partitions.statistics(TABLE);
  await local.close();
  if (stored.itemCount !== items) throw new Error(`installed ${stored.itemCount} of ${items} items`);
  const MiB = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);
  console.log(`payload ${MiB(size)} MiB (${items} items of ~1 KB): installed in ${seconds.toFixed(1)} s, RSS before ${MiB(rssBefore)} MiB, peak ${MiB(peakRss)} MiB`);
}

if (process.argv[2] === '--install') {
  const [dir, path, items] = process.argv.slice(3);
  await install(dir, path, Number(items));
} else {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-snapshot-install-'));
  try {
    const path = join(dir, 'payload');
    const { items } = await writePayload(path);
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--install', dir, path, String(items)], { stdio: 'inherit' });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`the install exited with ${code}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
