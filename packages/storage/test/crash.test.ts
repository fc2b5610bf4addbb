import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openLocalStore } from '../src/index.ts';
import { N, key, table, temporaryDirectory } from './helpers.ts';

const child = fileURLToPath(new URL('./fixtures/write-until-killed.ts', import.meta.url));

/** Runs the writer until it has acknowledged `acknowledged` writes, then kills it with SIGKILL. */
function writeThenKill(dataDir: string, acknowledged: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const writer = spawn(process.execPath, [child, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = -1;
    let buffered = '';
    const timer = setTimeout(() => {
      writer.kill('SIGKILL');
      reject(new Error('writer too slow'));
    }, 20_000);
    writer.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) last = Number(line);
      if (last + 1 >= acknowledged) writer.kill('SIGKILL');
    });
    writer.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(last + 1);
      else reject(new Error(`writer exited with ${code}`));
    });
  });
}

describe('a killed process', () => {
  it('loses no acknowledged write (they are in the log before the promise resolves)', async () => {
    const directory = await temporaryDirectory();
    try {
      const acknowledged = await writeThenKill(directory.path, 300);
      expect(acknowledged).toBeGreaterThanOrEqual(300);
      const store = await openLocalStore({ dataDir: directory.path });
      const schema = table(1, key('pk', 'N'));
      for (let i = 0; i < acknowledged; i++) {
        expect(await store.partitions.get({ table: schema, key: { pk: N(i) } }, { consistent: true }), `item ${i}`).toBeDefined();
      }
      const statistics = await store.partitions.statistics(schema);
      // Statistics are written in the same batch as the items: exact, whatever was in flight.
      const count = await store.partitions.readRange({ table: schema, forward: true, maxBytes: 1 << 30, select: 'COUNT' }, { consistent: true });
      expect(statistics.itemCount).toBe(count.count);
      await store.close();
    } finally {
      await directory.remove();
    }
  });
});
