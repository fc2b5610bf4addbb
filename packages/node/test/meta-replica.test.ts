import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMetaCommand, encodeMetaSnapshot, MetaCommandError, type MetaApplyResult, type MetaCommand, type MetaState } from '@shoal/meta';
import type { TableRecord } from '@shoal/model';
import { META_GROUP_ID, MetaReplica, MultiRaftHost, RaftLogStore } from '@shoal/node';
import { pump, whilePumping } from './fixtures/host-cluster.ts';

function table(name: string): TableRecord {
  return {
    schema: { name, tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
    status: 'ACTIVE',
    createdAt: 1_700_000_000,
    billingMode: 'PAY_PER_REQUEST',
    tags: {},
  };
}

const register = (nodeId: number): MetaCommand => ({ type: 'registerNode', address: `10.0.0.${nodeId}:7000`, nodeId, at: 1_000 });

describe('MetaReplica', () => {
  it('applies logged commands, hands the proposer the result, and tells listeners', () => {
    const replica = new MetaReplica();
    const seen: MetaState[] = [];
    const stop = replica.onApplied((state) => seen.push(state));
    replica.apply(encodeMetaCommand(register(1)), 2);
    const outcome = replica.apply(encodeMetaCommand({ type: 'createTable', record: table('T'), partitionCount: 2 }), 3) as MetaApplyResult;
    expect(outcome.table?.schema.tableId).toBe(1);
    expect(outcome.createdPartitions?.map((p) => p.id)).toEqual([1, 2]);
    expect(replica.state.tables.T).toEqual(outcome.table);
    expect(replica.appliedIndex()).toBe(3);
    expect(seen).toEqual([expect.objectContaining({ mapVersion: 1 }), replica.state]);
    stop();
    replica.apply(encodeMetaCommand({ type: 'allocateSpaceId' }), 4);
    expect(seen).toHaveLength(2);
  });

  it('returns a refusal as the outcome, leaving the state as it was', () => {
    const replica = new MetaReplica();
    replica.apply(encodeMetaCommand(register(1)), 2);
    const before = encodeMetaSnapshot(replica.state);
    const outcome = replica.apply(encodeMetaCommand({ type: 'deleteTable', name: 'Nope' }), 3);
    expect(outcome).toBeInstanceOf(MetaCommandError);
    expect((outcome as MetaCommandError).reason).toBe('noSuchTable');
    expect(Buffer.from(encodeMetaSnapshot(replica.state))).toEqual(Buffer.from(before));
    expect(replica.appliedIndex()).toBe(3);
  });

  it('refuses a malformed command that makes applying throw, rather than stop at every replay', () => {
    const replica = new MetaReplica();
    replica.apply(encodeMetaCommand(register(1)), 2);
    replica.apply(encodeMetaCommand({ type: 'createTable', record: table('T'), partitionCount: 1 }), 3);
    const before = encodeMetaSnapshot(replica.state);
    const malformed = { type: 'setReplicas', partitionId: 1, replicas: null } as unknown as MetaCommand;
    const outcome = replica.apply(encodeMetaCommand(malformed), 4);
    expect(outcome).toBeInstanceOf(MetaCommandError);
    expect((outcome as MetaCommandError).message).toMatch(/^setReplicas: refused: /);
    expect(Buffer.from(encodeMetaSnapshot(replica.state))).toEqual(Buffer.from(before));
    expect(replica.appliedIndex()).toBe(4);
  });

  it('throws on an entry it cannot decode rather than diverge', () => {
    const replica = new MetaReplica();
    expect(() => replica.apply(new TextEncoder().encode('{"type":"dropEverything"}'), 2)).toThrow(/unknown meta command/);
    expect(replica.appliedIndex()).toBe(0);
  });

  it('restores a snapshot exactly, with the replication factor it was bootstrapped with', () => {
    const source = new MetaReplica({ replicationFactor: 2 });
    for (const [i, command] of [register(1), register(2), register(3), { type: 'createTable', record: table('T'), partitionCount: 3 } as MetaCommand].entries()) {
      source.apply(encodeMetaCommand(command), i + 2);
    }
    expect(source.state.partitions[1].replicas).toHaveLength(2);
    const copy = new MetaReplica();
    let notified = 0;
    copy.onApplied(() => notified++);
    copy.restore(source.snapshot(), source.appliedIndex());
    expect(notified).toBe(1);
    expect(copy.appliedIndex()).toBe(source.appliedIndex());
    expect(copy.state.replicationFactor).toBe(2);
    expect(Buffer.from(copy.snapshot())).toEqual(Buffer.from(source.snapshot()));
  });
});

describe('the meta group (group 0) in a RaftLogStore', () => {
  let root = '';

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-meta-replica-'));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function open(meta: MetaReplica): Promise<{ store: RaftLogStore; host: MultiRaftHost }> {
    const store = await RaftLogStore.open(root);
    const host = new MultiRaftHost({
      nodeId: 1,
      logStore: store,
      sender: { send: () => undefined, flush: () => undefined },
      stateMachine: () => meta,
      tickMs: 10,
      electionTick: 10,
      heartbeatTick: 1,
      seed: 3,
    });
    host.open();
    return { store, host };
  }

  it('is bootstrapped, proposed to, and rebuilt by replaying its log after a restart', async () => {
    const first = new MetaReplica();
    const a = await open(first);
    await a.host.createGroup(META_GROUP_ID, [1]);
    const member = [{ nodeId: 1, host: a.host }];
    await pump(member, () => a.host.leaderOf(META_GROUP_ID) === 1, 'a meta leader');
    const propose = (command: MetaCommand) => whilePumping(member, a.host.propose(META_GROUP_ID, encodeMetaCommand(command)), 'a meta command');
    await propose(register(1));
    const created = (await propose({ type: 'createTable', record: table('T'), partitionCount: 2 })) as MetaApplyResult;
    expect(created.table?.schema.name).toBe('T');
    expect(await propose({ type: 'createTable', record: table('T'), partitionCount: 2 })).toBeInstanceOf(MetaCommandError);
    const snapshot = Buffer.from(first.snapshot());
    await a.host.stop();
    await a.store.close();

    const second = new MetaReplica();
    const b = await open(second);
    expect(b.host.hasGroup(META_GROUP_ID)).toBe(true);
    await pump([{ nodeId: 1, host: b.host }], () => Buffer.from(second.snapshot()).equals(snapshot), 'the log replayed');
    expect(second.state.tables.T).toEqual(created.table);
    await b.host.stop();
    await b.store.close();
  });
});
