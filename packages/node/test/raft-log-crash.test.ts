import { spawn } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RaftLogStore } from '../src/index.ts';
import { applyRound, emptyModel, modelOf, planRound, type LogModel } from './support/crash-plan.ts';
import { tempDir } from './support/raft-log.ts';

const WRITER = fileURLToPath(new URL('./fixtures/raft-log-writer.ts', import.meta.url));

interface Run {
  /** Highest round whose persist resolved (as far as its output made it out). */
  acked: number;
  /** Highest round whose persist was called. */
  tried: number;
}

/** Runs the writer from `firstRound`, SIGKILLs it once `killAfterAcks` rounds resolved. */
function runWriterUntilKilled(dir: string, firstRound: number, killAfterAcks: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dir, String(firstRound)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run: Run = { acked: firstRound - 1, tried: firstRound - 1 };
    let acks = 0;
    let buffered = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer made no progress: ${stderr}`));
    }, 60_000);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'try') run.tried = Number(n);
        if (word === 'ack') {
          // Resolutions come in call order: an ack is for the oldest unresolved round.
          if (Number(n) !== run.acked + 1) {
            child.kill('SIGKILL');
            reject(new Error(`ack ${n} after ack ${run.acked}`));
          }
          run.acked = Number(n);
          acks++;
        }
      }
      if (!killed && acks >= killAfterAcks) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && killed) resolve(run);
      else reject(new Error(`writer exited with ${code ?? signal}: ${stderr}`));
    });
  });
}

function modelAfter(base: LogModel, fromRound: number, toRound: number): LogModel {
  const model: LogModel = new Map([...base].map(([g, m]) => [g, { entries: [...m.entries], hardState: { ...m.hardState } }]));
  for (let r = fromRound; r <= toRound; r++) applyRound(model, planRound(r, model));
  return model;
}

describe('RaftLogStore crash safety (writer SIGKILLed mid-run)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('raft-log-crash'));
  });

  afterAll(async () => {
    await cleanup();
  });

  it('keeps every acknowledged entry and hard state, across two crashes', { timeout: 120_000 }, async () => {
    let base = emptyModel();
    let firstRound = 1;
    for (const killAfterAcks of [60, 45]) {
      const run = await runWriterUntilKilled(dir, firstRound, killAfterAcks);
      expect(run.acked).toBeGreaterThanOrEqual(firstRound - 1 + killAfterAcks);
      const store = await RaftLogStore.open(dir);
      try {
        const recovered = modelOf(store);
        // The store holds exactly the state after some round between the last acknowledged one and
        // the last one attempted: nothing acknowledged is lost, nothing is half-written.
        const candidates: number[] = [];
        for (let r = run.acked; r <= run.tried; r++) candidates.push(r);
        const matching = candidates.filter((r) => isDeepStrictEqual(recovered, modelAfter(base, firstRound, r)));
        expect(matching, `recovered state after rounds ${run.acked}..${run.tried}`).not.toEqual([]);
        base = recovered;
        firstRound = matching[0] + 1;
      } finally {
        await store.close();
      }
    }
  });
});
