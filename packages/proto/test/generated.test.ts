import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const committed = join(root, 'packages', 'proto', 'src', 'gen');
let scratch: string | undefined;

afterAll(async () => {
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), await readFile(path, 'utf8'));
  }
  return out;
}

describe('generated code', () => {
  it('is what `npm run generate` makes from proto/ (run it and commit when this fails)', async () => {
    scratch = await mkdtemp(join(tmpdir(), 'shoal-proto-gen-'));
    await promisify(execFile)(process.execPath, [join(root, 'scripts', 'generate.ts'), '--out', scratch], { cwd: root });
    const fresh = await files(join(scratch, 'packages', 'proto', 'src', 'gen'));
    const current = await files(committed);
    expect([...current.keys()].sort()).toEqual([...fresh.keys()].sort());
    for (const [path, text] of fresh) expect(current.get(path), path).toBe(text);
    expect(fresh.size).toBeGreaterThanOrEqual(6);
  });
});
