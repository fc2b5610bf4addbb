import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** The `shoal` command refuses what it cannot run, before starting anything. */

const MAIN = resolve(import.meta.dirname, '..', 'src', 'main.ts');

/** The environment without SHOAL_ settings (credentials) that the flags' env fallbacks would pick up. */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('SHOAL_')));

function shoal(...args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000, env: ENV });
  return { status: result.status, stderr: result.stderr };
}

describe('shoal command line', () => {
  it('keeps the single-process flags to shoal dev --single', () => {
    const { status, stderr } = shoal('dev', '--in-memory');
    expect(status).toBe(1);
    expect(stderr).toContain('--in-memory and --sync apply to --single only');
  });

  it('wants both halves of the credentials', () => {
    const { status, stderr } = shoal('router', '--meta', '127.0.0.1:1', '--access-key-id', 'only');
    expect(status).toBe(1);
    expect(stderr).toContain('--access-key-id and --secret-access-key go together');
  });

  it('checks node ids, meta peers and counts', () => {
    expect(shoal('node', '--node-id', '0', '--listen', '127.0.0.1:0', '--data-dir', 'x', '--meta-peers', '1=127.0.0.1:1').stderr).toContain(
      'must be a whole number of at least 1',
    );
    expect(shoal('node', '--node-id', '1', '--listen', '127.0.0.1:0', '--data-dir', 'x', '--meta-peers', '1=nowhere').stderr).toContain(
      '"nowhere" is not host:port',
    );
    expect(shoal('node', '--node-id', '1', '--listen', '127.0.0.1:0', '--data-dir', 'x').stderr).toContain(
      "required option '--meta-peers <id=host:port,...>' not specified",
    );
    expect(shoal('dev', '--nodes', '0').stderr).toContain('must be a whole number of at least 1');
  });

  it('takes the per-partition admission limits and the router count, with their defaults', () => {
    const node = ['node', '--node-id', '1', '--listen', '127.0.0.1:0', '--data-dir', 'x', '--meta-peers', '1=127.0.0.1:1'];
    const refused = { '--read-units-per-partition': '0', '--write-units-per-partition': '-5', '--burst-seconds': 'many' };
    for (const [flag, bad] of Object.entries(refused)) {
      const { status, stderr } = shoal(...node, flag, bad);
      expect(status).toBe(1);
      expect(stderr).toContain(`option '${flag} `);
      expect(stderr).toContain('must be a number above 0');
    }
    const help = spawnSync(process.execPath, [MAIN, 'node', '--help'], { encoding: 'utf8', timeout: 30_000, env: ENV }).stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--read-units-per-partition <units> .*\(default: 3000\)/);
    expect(help).toMatch(/--write-units-per-partition <units> .*\(default: 1000\)/);
    expect(help).toMatch(/--burst-seconds <seconds> .*\(default: 30\)/);
    expect(shoal('router', '--meta', '127.0.0.1:1', '--routers', '0').stderr).toContain('must be a whole number of at least 1');
  });

  it('takes the Raft log compaction, quiescence and timing settings, with their defaults', () => {
    const node = ['node', '--node-id', '1', '--listen', '127.0.0.1:0', '--data-dir', 'x', '--meta-peers', '1=127.0.0.1:1'];
    const refused: [string, string, string][] = [
      ['--log-compaction-every', '-1', 'must be a whole number of at least 0'],
      ['--log-compaction-keep', 'some', 'must be a whole number of at least 0'],
      ['--raft-tick-ms', '0', 'must be a whole number of at least 1'],
      ['--raft-election-ticks', '2.5', 'must be a whole number of at least 1'],
      ['--index-backfill-chunk-items', '0', 'must be a whole number of at least 1'],
    ];
    for (const [flag, bad, message] of refused) {
      const { status, stderr } = shoal(...node, flag, bad);
      expect(status).toBe(1);
      expect(stderr).toContain(`option '${flag} `);
      expect(stderr).toContain(message);
    }
    const help = spawnSync(process.execPath, [MAIN, 'node', '--help'], { encoding: 'utf8', timeout: 30_000, env: ENV }).stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--log-compaction-every <entries> .*\(default: 10000\)/);
    expect(help).toMatch(/--log-compaction-keep <entries> .*\(default: 2000\)/);
    expect(help).toMatch(/--quiesce-idle-groups /);
    expect(help).toMatch(/--raft-tick-ms <ms> .*\(default: 50\)/);
    expect(help).toMatch(/--raft-election-ticks <ticks> .*\(default: 20\)/);
    expect(help).toMatch(/--index-backfill-chunk-items <items> .*default 1000\)/);
  });

  it('takes the log level by flag or SHOAL_LOG_LEVEL, and refuses an unknown one', () => {
    const node = ['node', '--node-id', '1', '--listen', '127.0.0.1:0', '--data-dir', 'x', '--meta-peers', '1=127.0.0.1:1'];
    expect(shoal(...node, '--log-level', 'loud').stderr).toContain("option '--log-level <level>' argument 'loud' is invalid");
    const fromEnv = spawnSync(process.execPath, [MAIN, 'router', '--meta', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000, env: { ...ENV, SHOAL_LOG_LEVEL: 'verbose' } });
    expect(fromEnv.status).toBe(1);
    expect(fromEnv.stderr).toContain("value 'verbose' from env 'SHOAL_LOG_LEVEL' is invalid");
    expect(shoal('admin', 'drain', 'four').stderr).toContain("value 'four' is invalid for argument 'node-id'");
  });

  it('finds no dev cluster for admin status in a directory without one', () => {
    const { status, stderr } = shoal('admin', 'status', '--data-dir', resolve(import.meta.dirname, 'no-such-dir'));
    expect(status).toBe(1);
    expect(stderr).toContain('no shoal dev cluster in');
  });
});
