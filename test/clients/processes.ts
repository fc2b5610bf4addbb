import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

/** Real client programs (aws CLI, python3) run against a real `shoal dev` process. */

const REPO = resolve(import.meta.dirname, '..', '..');

/** Debian's packages (awscli v2, python3-boto3), not whatever PATH finds first: see .ci/run. */
export const AWS_CLI = '/usr/bin/aws';
export const DEBIAN_PYTHON = '/usr/bin/python3';

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Kills the whole process group: a shell or a CLI may have started children of its own. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone between the check and the kill.
  }
}

/** Kills every process started here that is still running (for afterAll). */
export function killAllStarted(): void {
  for (const child of running) killGroup(child);
  running.clear();
}

function startProcess(command: string, args: readonly string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Runs a program to its end, or kills it after `timeoutMs` and fails. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ProcessResult> {
  const child = startProcess(command, args, options.env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      killGroup(child);
      fail(new Error(`${command} ${args.join(' ')} did not finish in ${options.timeoutMs} ms: ${stdout} ${stderr}`));
    }, options.timeoutMs);
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(
        error.code === 'ENOENT'
          ? new Error(`${command} is missing: sudo apt-get install -y --no-install-recommends awscli python3-boto3`)
          : error,
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr });
    });
  });
}

/** The environment of the process under test, without variables that would switch on authentication. */
function environmentWithout(names: readonly string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of names) delete env[name];
  return env;
}

export interface ShoalDev {
  endpoint: string;
  /** SIGTERM, then the exit code (0 for a clean stop). */
  stop(): Promise<number | null>;
}

/** Starts `shoal dev --single --in-memory` on an OS-assigned port and waits for its `listening` line. */
export async function startShoalDev(
  options: { accessKeyId?: string; secretAccessKey?: string } = {},
): Promise<ShoalDev> {
  const args = ['packages/cli/src/main.ts', 'dev', '--single', '--in-memory', '--port', '0'];
  if (options.accessKeyId !== undefined) args.push('--access-key-id', options.accessKeyId);
  if (options.secretAccessKey !== undefined) args.push('--secret-access-key', options.secretAccessKey);
  const child = startProcess(
    process.execPath,
    args,
    environmentWithout(['SHOAL_ACCESS_KEY_ID', 'SHOAL_SECRET_ACCESS_KEY']),
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const endpoint = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => {
      killGroup(child);
      fail(new Error(`shoal dev did not start: ${stdout} ${stderr}`));
    }, 30_000);
    child.stdout!.on('data', () => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match === null) return;
      clearTimeout(timer);
      done(match[1]);
    });
    void exited.then(() => {
      clearTimeout(timer);
      fail(new Error(`shoal dev exited early: ${stdout} ${stderr}`));
    });
  });
  return {
    endpoint,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
