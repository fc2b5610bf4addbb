import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '@shoal/raft';

const utf8 = new TextEncoder();

export function entry(term: number, index: number, data = ''): Entry {
  return { term, index, type: 'normal', data: utf8.encode(data) };
}

/** Entries at 1, 2, ... with the given terms. */
export function entriesOfTerms(...terms: number[]): Entry[] {
  return terms.map((term, i) => entry(term, i + 1, `e${i + 1}`));
}

/** [term, index] pairs, for compact assertions. */
export function termsAndIndexes(entries: readonly Entry[]): number[][] {
  return entries.map((e) => [e.term, e.index]);
}

/** A fresh directory under the OS temp dir; `cleanup` removes it. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `shoal-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
