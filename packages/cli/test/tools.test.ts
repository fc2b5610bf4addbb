import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** `shoal chaos` and `shoal heat` hand every argument to the tools' own parsers. */
const MAIN = resolve(import.meta.dirname, '..', 'src', 'main.ts');

function shoal(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('shoal chaos and shoal heat', () => {
  it('shows each tool\'s own usage for --help', () => {
    const chaos = shoal('chaos', '--help');
    expect(chaos.status).toBe(0);
    expect(chaos.stdout).toMatch(/^usage: shoal chaos \[options\]/);
    const heat = shoal('heat', '--help');
    expect(heat.status).toBe(0);
    expect(heat.stdout).toMatch(/^Usage: shoal heat \[options\]/);
  });

  it('passes options through to the tool, which refuses a bad one with its usage and exit status', () => {
    const chaos = shoal('chaos', '--duration', 'soon');
    expect(chaos.status).toBe(2);
    expect(chaos.stderr).toContain('shoal chaos:');
    expect(chaos.stderr).toContain('usage: shoal chaos');
  });
});
