/**
 * Raft-log store throughput: every host tick persists one 1 KB entry (plus the hard state) for
 * each of G groups in ONE persist() call, so one LevelDB batch and one fsync per tick (group
 * commit). Reports appends/s and fsyncs/s for 1, 10 and 100 groups, a no-group-commit baseline
 * (one persist per group, awaited one after another), the time to reopen (load every group), and
 * the entry encoding against JSON.
 *
 *   npx node scripts/bench-raft-log.ts [seconds per run, default 3]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '@shoal/raft';
import { RaftLogStore, type GroupPersist } from '@shoal/node';
// The codec is internal to @shoal/node; the bench measures it directly.
import { decodeEntryValue, encodeEntryValue } from '../packages/node/src/raft-log/codec.ts';

const seconds = Number(process.argv[2] ?? 3);
const ENTRY_BYTES = 1024;

function payload(seed: number): Uint8Array {
  const bytes = new Uint8Array(ENTRY_BYTES);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed * 31 + i) & 0xff;
  return bytes;
}

function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

async function run(label: string, groups: number, groupCommit: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-raft-log-'));
  let store = await RaftLogStore.open(dir);
  try {
    for (let g = 1; g <= groups; g++) await store.bootstrapGroup(g, { voters: [1, 2, 3] }, new Uint8Array(0));
    const data = payload(7);
    const syncsBefore = store.stats.syncedBatches;
    let index = 1;
    let appends = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    while (performance.now() < deadline) {
      index++;
      const updates: GroupPersist[] = [];
      for (let g = 1; g <= groups; g++) {
        const entry: Entry = { term: 2, index, type: 'normal', data };
        updates.push({ groupId: g, entries: [entry], hardState: { term: 2, vote: 1, commit: index - 1 } });
      }
      if (groupCommit) await store.persist(updates);
      else for (const u of updates) await store.persist([u]);
      appends += groups;
      if (index % 1000 === 0) for (let g = 1; g <= groups; g++) await store.compact(g, index - 500);
    }
    const elapsed = (performance.now() - started) / 1000;
    const fsyncs = store.stats.syncedBatches - syncsBefore;
    console.log(
      `${label.padEnd(36)} ${String(Math.round(appends / elapsed)).padStart(8)} appends/s ` +
        `${String(Math.round(fsyncs / elapsed)).padStart(6)} fsyncs/s ` +
        `${((appends * ENTRY_BYTES) / elapsed / 1e6).toFixed(2).padStart(6)} MB/s  load ${load()}`,
    );
    await store.close();
    const reopening = performance.now();
    store = await RaftLogStore.open(dir);
    const recovered = store.listGroups();
    const retained = recovered.reduce((sum, g) => sum + g.lastIndex - g.firstIndex + 1, 0);
    console.log(
      `${''.padEnd(36)} reopen: ${recovered.length} groups, ${retained} retained entries in ` +
        `${Math.round(performance.now() - reopening)} ms`,
    );
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function encodings(): void {
  const entry: Entry = { term: 12345, index: 987654, type: 'normal', data: payload(3) };
  const json = (e: Entry): string => JSON.stringify({ term: e.term, type: e.type, data: Buffer.from(e.data).toString('base64') });
  const rate = (roundTrip: () => void): number => {
    for (let i = 0; i < 20_000; i++) roundTrip(); // warm up the JIT
    const n = 200_000;
    const t = performance.now();
    for (let i = 0; i < n; i++) roundTrip();
    return n / ((performance.now() - t) / 1000);
  };
  const binaryRate = rate(() => decodeEntryValue(entry.index, encodeEntryValue(entry)));
  const jsonRate = rate(() => Buffer.from((JSON.parse(json(entry)) as { data: string }).data, 'base64'));
  console.log(
    `entry value, 1 KB data: binary ${encodeEntryValue(entry).byteLength} B, ${Math.round(binaryRate)} encode+decode/s; ` +
      `JSON+base64 ${Buffer.byteLength(json(entry))} B, ${Math.round(jsonRate)} encode+decode/s`,
  );
}

console.log(`bench-raft-log: ${seconds}s per run, ${ENTRY_BYTES} B entries, load before ${load()}`);
encodings();
for (const groups of [1, 10, 100]) await run(`${groups} group(s), one fsync per tick`, groups, true);
await run('10 groups, one persist per group', 10, false);
