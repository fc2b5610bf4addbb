/**
 * The servers under test, each started as a child process on a free loopback port and stopped
 * (SIGTERM, then SIGKILL if it lingers) when done, on errors and on interruption.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Endpoint } from './dynamodb-http.ts';

export const TARGET_NAMES = ['shoal', 'dynalite'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface RunningTarget {
  name: TargetName;
  endpoint: Endpoint;
  /** What the target is, for the report (e.g. its data directory). */
  description: string;
  /** The end of what the server printed, to show when something fails. */
  recentOutput(): string;
  /** CPU time the server process has used so far, in seconds (undefined where /proc is missing). */
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

/** Children not yet stopped: killed outright if this process exits first. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Stops every child still running; for SIGINT/SIGTERM handlers and fatal errors. */
export async function stopAllTargets(): Promise<void> {
  await Promise.all([...liveChildren].map((child) => stopChild(child)));
}

/** A port the OS just handed out on loopback; free unless something grabs it in between. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    liveChildren.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const forceKill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(forceKill);
      liveChildren.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const KEPT_OUTPUT_CHARS = 4000;
/** Linux reports process times in USER_HZ ticks, 100 a second on every mainstream kernel. */
const CLOCK_TICKS_PER_SECOND = 100;

/** User plus system CPU seconds of a process, from /proc/<pid>/stat (fields 14 and 15). */
function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it start at "state" (field 3).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

interface ListeningChild {
  child: ChildProcess;
  recentOutput(): string;
  cpuSeconds(): number | undefined;
}

/** Spawns a Node child and resolves once it prints a line containing "listening". */
async function spawnUntilListening(label: string, args: string[]): Promise<ListeningChild> {
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-KEPT_OUTPUT_CHARS);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} did not report listening within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      const onData = (): void => {
        if (/listening/i.test(output)) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${label} exited before listening (code ${code}, signal ${signal})`));
      });
    });
  } catch (error) {
    await stopChild(child);
    throw new Error(`${(error as Error).message}\n--- ${label} output ---\n${output}`);
  }
  return { child, recentOutput: () => output, cpuSeconds: () => processCpuSeconds(child.pid) };
}

async function startDynalite(): Promise<RunningTarget> {
  const port = await freePort();
  const cli = path.join(REPO_ROOT, 'node_modules/dynalite/cli.js');
  // In memory (no --path); tables become ACTIVE at once instead of after the default 500 ms.
  const args = [cli, '--host', HOST, '--port', String(port), '--createTableMs', '0', '--deleteTableMs', '0', '--updateTableMs', '0'];
  const { child, recentOutput, cpuSeconds } = await spawnUntilListening('dynalite', args);
  return {
    name: 'dynalite',
    endpoint: { host: HOST, port },
    description: 'dynalite 4, in memory',
    recentOutput,
    cpuSeconds,
    stop: () => stopChild(child),
  };
}

async function startShoal(): Promise<RunningTarget> {
  const main = path.join(REPO_ROOT, 'packages/cli/src/main.ts');
  if (!existsSync(main)) throw new Error(`Shoal's CLI (${main}) does not exist yet`);
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'shoal-bench-'));
  let started: ListeningChild;
  try {
    started = await spawnUntilListening('shoal', [main, 'dev', '--host', HOST, '--port', String(port), '--data-dir', dataDir]);
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    name: 'shoal',
    endpoint: { host: HOST, port },
    description: `shoal dev, single node, data in ${dataDir}`,
    recentOutput: started.recentOutput,
    cpuSeconds: started.cpuSeconds,
    stop: async () => {
      await stopChild(started.child);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function startTarget(name: TargetName): Promise<RunningTarget> {
  return name === 'shoal' ? startShoal() : startDynalite();
}
