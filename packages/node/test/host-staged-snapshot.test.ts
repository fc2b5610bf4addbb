/**
 * What a host does with a snapshot the transport staged in a file: the state machine installs it from
 * the file (path, offset and size of its payload), and the host deletes the file once installed, or
 * at once when Raft does not take the snapshot (stale); a failed install keeps it (the host stops, and
 * a restart may redo the restore from it).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaStateMachine, StagedPayload } from '@shoal/node';
import type { Message } from '@shoal/raft';
import { startKvMember, stopKvMember, turn, type KvMember } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const GROUP = 3;

/** A state machine whose state is the payloads it installed. */
class StagedMachine implements ReplicaStateMachine {
  readonly installed: Array<{ index: number; payload: string }> = [];
  attempts = 0;
  failNext = false;
  #applied = 0;

  apply(_data: Uint8Array, index: number): void {
    this.#applied = index;
  }
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
  restore(): void {}
  appliedIndex(): number {
    return this.#applied;
  }
  async installSnapshot({ index, payload }: { index: number; data: Uint8Array; payload: StagedPayload }): Promise<void> {
    this.attempts++;
    if (this.failNext) throw new Error('the install failed');
    const bytes = await readFile(payload.path);
    this.installed.push({ index, payload: bytes.subarray(payload.offset, payload.offset + payload.size).toString() });
    this.#applied = index;
  }
}

/** A MsgSnap from node 2 (term 3) at `index`, its data empty: the file holds it. */
function snapshotMessage(index: number): Message {
  return {
    type: 'MsgSnap', from: 2, to: 1, term: 3, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    snapshot: { metadata: { index, term: 3, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) },
  };
}

async function until(probe: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (probe()) return;
    await turn();
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('MultiRaftHost: a snapshot staged in a file', () => {
  const network = new MemoryNetwork();
  const machine = new StagedMachine();
  let root = '';
  let member: KvMember;

  /** Stages `descriptor | payload` framed as the host frames a snapshot, and hands it to the host. */
  async function deliver(index: number, payload: string): Promise<string> {
    const descriptor = Buffer.from('descriptor');
    const path = join(root, `staged-${index}`);
    const framed = Buffer.concat([Buffer.from([0, 0, 0, descriptor.length]), descriptor, Buffer.from(payload)]);
    await writeFile(path, framed);
    member.host.receive([{ groupId: GROUP, message: snapshotMessage(index), staged: { path, size: framed.length } }]);
    return path;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-staged-'));
    member = await startKvMember(network, 1, join(root, 'node-1'), { seed: 3, stateMachine: () => machine });
    await member.host.joinGroup(GROUP);
  });

  afterAll(async () => {
    await stopKvMember(network, member);
    await rm(root, { recursive: true, force: true });
  });

  it('installs from the file, then deletes it', async () => {
    const path = await deliver(10, 'payload at 10');
    await until(() => machine.installed.length === 1 && !existsSync(path), 'the install and the deletion');
    expect(machine.installed).toEqual([{ index: 10, payload: 'payload at 10' }]);
    expect(member.host.stats.snapshotsRestored).toBe(1);
  });

  it('deletes the file of a snapshot Raft does not take (stale), installing nothing', async () => {
    const path = await deliver(5, 'payload at 5');
    await until(() => !existsSync(path), 'the deletion');
    expect(machine.attempts).toBe(1);
    expect(member.host.stats.snapshotsRestored).toBe(1);
  });

  it('keeps the file of a failed install', async () => {
    machine.failNext = true;
    const path = await deliver(20, 'payload at 20');
    await until(() => machine.attempts === 2, 'the install');
    for (let i = 0; i < 10; i++) await turn();
    expect(existsSync(path)).toBe(true);
    expect(member.host.stats.snapshotsRestored).toBe(1);
  });
});

describe('MultiRaftHost: a staged snapshot of a group removed before the round delivers it', () => {
  it('deletes its file (nothing else would until a restart swept the directory)', async () => {
    const network = new MemoryNetwork();
    const root = await mkdtemp(join(tmpdir(), 'shoal-host-staged-removed-'));
    const member = await startKvMember(network, 1, join(root, 'node-1'), { seed: 4, stateMachine: () => new StagedMachine() });
    try {
      await member.host.joinGroup(GROUP);
      const descriptor = Buffer.from('descriptor');
      const path = join(root, 'staged-10');
      const framed = Buffer.concat([Buffer.from([0, 0, 0, descriptor.length]), descriptor, Buffer.from('payload at 10')]);
      await writeFile(path, framed);
      expect(member.host.receive([{ groupId: GROUP, message: snapshotMessage(10), staged: { path, size: framed.length } }])).toEqual([]);
      // The reconciler removes the replica in the same turn, before the host's next round.
      await member.host.removeGroup(GROUP);
      await until(() => !existsSync(path), 'the deletion');
    } finally {
      await stopKvMember(network, member);
      await rm(root, { recursive: true, force: true });
    }
  });
});
