import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkClients } from './helpers/shoal.ts';

/** The real `shoal dev --single` process (the one-process engine): data survives a clean stop and a kill. */

const REPO = resolve(import.meta.dirname, '..');
const children = new Set<ChildProcess>();
let dataDir: string;

interface RunningShoal {
  child: ChildProcess;
  endpoint: string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `shoal dev` on an OS-assigned port and waits for its `listening` line. */
async function startCli(): Promise<RunningShoal> {
  const child = spawn(process.execPath, ['packages/cli/src/main.ts', 'dev', '--single', '--port', '0', '--data-dir', dataDir], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      done({ code, signal });
    }),
  );
  const endpoint = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`shoal dev did not start: ${stdout} ${stderr}`)), 20_000);
    const check = (): void => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        done(match[1]);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      fail(new Error(`shoal dev exited early: ${stdout} ${stderr}`));
    });
  });
  return { child, endpoint, stdout: () => stdout, exited };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'shoal-cli-'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

describe('shoal dev --single', () => {
  it('prints one listening line, stops cleanly on SIGTERM and keeps the data', async () => {
    const first = await startCli();
    expect(first.stdout()).toBe(`shoal dev listening on ${first.endpoint} (data: ${dataDir})\n`);
    const { client, doc } = sdkClients(first.endpoint);
    await client.send(
      new CreateTableCommand({
        TableName: 'restart',
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    for (let i = 0; i < 20; i++) await doc.send(new PutCommand({ TableName: 'restart', Item: { id: `clean${i}`, n: i } }));
    client.destroy();
    first.child.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(first.stdout().split('\n').filter(Boolean)).toHaveLength(1);

    const second = await startCli();
    const again = sdkClients(second.endpoint);
    const { Table } = await again.client.send(new DescribeTableCommand({ TableName: 'restart' }));
    expect(Table?.ItemCount).toBe(20);
    for (let i = 0; i < 20; i++) {
      const { Item } = await again.doc.send(new GetCommand({ TableName: 'restart', Key: { id: `clean${i}` }, ConsistentRead: true }));
      expect(Item).toEqual({ id: `clean${i}`, n: i });
    }
    again.client.destroy();
    second.child.kill('SIGINT');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  });

  it('keeps every acknowledged write across SIGKILL', async () => {
    const first = await startCli();
    const { client, doc } = sdkClients(first.endpoint);
    const acknowledged: string[] = [];
    for (let i = 0; i < 50; i++) {
      await doc.send(new PutCommand({ TableName: 'restart', Item: { id: `killed${i}`, n: i } }));
      acknowledged.push(`killed${i}`);
    }
    client.destroy();
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await startCli();
    const again = sdkClients(second.endpoint);
    for (const id of acknowledged) {
      const { Item } = await again.doc.send(new GetCommand({ TableName: 'restart', Key: { id }, ConsistentRead: true }));
      expect(Item?.id).toBe(id);
    }
    const { Item } = await again.doc.send(new GetCommand({ TableName: 'restart', Key: { id: 'clean0' }, ConsistentRead: true }));
    expect(Item).toEqual({ id: 'clean0', n: 0 });
    again.client.destroy();
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  });

  it('reports a port already in use and exits 1', async () => {
    const running = await startCli();
    const port = new URL(running.endpoint).port;
    const clash = spawn(process.execPath, ['packages/cli/src/main.ts', 'dev', '--single', '--port', port, '--in-memory'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(clash);
    let stderr = '';
    clash.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((done) => clash.once('exit', (exitCode) => done(exitCode)));
    children.delete(clash);
    expect(code).toBe(1);
    expect(stderr).toContain('EADDRINUSE');
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
  });
});
