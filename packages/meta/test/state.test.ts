import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { findPartitionMapProblems, spaceRange, type TableRecord, type IndexSchema } from '@shoal/model';
import {
  applyMetaCommand,
  decodeMetaCommand,
  decodeMetaSnapshot,
  encodeMetaCommand,
  emptyMetaState,
  encodeMetaSnapshot,
  MetaCommandError,
  partitionList,
  type MetaCommand,
  type MetaState,
} from '../src/index.ts';
import { run, tableRecord } from './support/meta-state.ts';

// Fixed seed: the properties explore the same cases on every run.
fc.configureGlobal({ seed: 20261125 });

function gsi(name: string): IndexSchema {
  return { name, kind: 'GSI', indexId: 0, hashKey: { name: name + 'Key', type: 'S' }, projection: { type: 'ALL' } };
}

const table = (name: string, indexes: IndexSchema[] = []): TableRecord => tableRecord(name, { rangeKey: { name: 'sk', type: 'N' }, indexes });

function cluster(nodes: number, replicationFactor = 3): MetaState {
  let state = emptyMetaState(replicationFactor);
  for (let i = 1; i <= nodes; i++) state = run(state, { type: 'registerNode', address: `10.0.0.${i}:7000`, nodeId: 0, at: 1000 });
  return state;
}

function key(tableId: number, ...bytes: number[]): Uint8Array {
  return Buffer.concat([spaceRange(tableId).start, Buffer.from(bytes)]);
}

function rejects(state: MetaState, command: MetaCommand, message: RegExp): void {
  const before = encodeMetaSnapshot(state);
  expect(() => applyMetaCommand(state, command)).toThrow(MetaCommandError);
  expect(() => applyMetaCommand(state, command)).toThrow(message);
  expect(Buffer.from(encodeMetaSnapshot(state))).toEqual(Buffer.from(before));
}

describe('nodes', () => {
  it('registers new nodes with fresh ids and takes back a restarted one', () => {
    let state = emptyMetaState();
    const first = applyMetaCommand(state, { type: 'registerNode', address: 'a:1', nodeId: 0, at: 5 });
    expect(first.nodeId).toBe(1);
    state = first.state;
    const second = applyMetaCommand(state, { type: 'registerNode', address: 'b:1', nodeId: 0, at: 6 });
    expect(second.nodeId).toBe(2);
    state = run(second.state, { type: 'markNodeDown', nodeId: 1, at: 10 });
    expect(state.nodes[1]).toMatchObject({ state: 'down', downSince: 10 });
    const back = applyMetaCommand(state, { type: 'registerNode', address: 'a:2', nodeId: 1, at: 20 });
    expect(back.nodeId).toBe(1);
    expect(back.state.nodes[1]).toEqual({ id: 1, address: 'a:2', state: 'up', lastHeartbeatAt: 20 });
  });

  it('registers a node under the fixed id it brings, and keeps fresh ids above every id seen', () => {
    let state = emptyMetaState();
    const fixed = applyMetaCommand(state, { type: 'registerNode', address: 'c:1', nodeId: 3, at: 5 });
    expect(fixed.nodeId).toBe(3);
    expect(fixed.state.nodes[3]).toEqual({ id: 3, address: 'c:1', state: 'up', lastHeartbeatAt: 5 });
    expect(fixed.state.mapVersion).toBe(1);
    state = run(fixed.state, { type: 'registerNode', address: 'a:1', nodeId: 1, at: 6 });
    expect(Object.keys(state.nodes)).toEqual(['1', '3']);
    expect(applyMetaCommand(state, { type: 'registerNode', address: 'd:1', nodeId: 0, at: 7 }).nodeId).toBe(4);
    rejects(state, { type: 'registerNode', address: 'e:1', nodeId: -2, at: 7 }, /bad node id -2/);
    rejects(state, { type: 'registerNode', address: 'e:1', nodeId: 1.5, at: 7 }, /bad node id 1.5/);
  });

  it('tracks heartbeats, and a heartbeat brings a down node back', () => {
    let state = cluster(2);
    const version = state.mapVersion;
    state = run(state, { type: 'heartbeat', nodeId: 1, at: 2000 });
    expect(state.nodes[1].lastHeartbeatAt).toBe(2000);
    expect(state.mapVersion).toBe(version); // liveness alone is not a map change
    state = run(state, { type: 'heartbeat', nodeId: 1, at: 1500 });
    expect(state.nodes[1].lastHeartbeatAt).toBe(2000);
    state = run(state, { type: 'markNodeDown', nodeId: 2, at: 3000 }, { type: 'heartbeat', nodeId: 2, at: 3100 });
    expect(state.nodes[2]).toEqual({ id: 2, address: '10.0.0.2:7000', state: 'up', lastHeartbeatAt: 3100 });
    expect(state.mapVersion).toBe(version + 2);
  });

  it('drains, and keeps draining across heartbeats, restarts and downtime', () => {
    let state = run(cluster(3), { type: 'markNodeDraining', nodeId: 2 }, { type: 'heartbeat', nodeId: 2, at: 5000 });
    expect(state.nodes[2].state).toBe('draining');
    state = run(state, { type: 'registerNode', address: '10.0.0.2:7000', nodeId: 2, at: 6000 });
    expect(state.nodes[2].state).toBe('draining');
    state = run(state, { type: 'markNodeDown', nodeId: 2, at: 7000 }, { type: 'heartbeat', nodeId: 2, at: 8000 });
    expect(state.nodes[2]).toEqual({ id: 2, address: '10.0.0.2:7000', state: 'draining', lastHeartbeatAt: 8000, drainRequested: true });
    // Asked while down, the drain starts when the node is back.
    state = run(state, { type: 'markNodeDown', nodeId: 3, at: 9000 }, { type: 'markNodeDraining', nodeId: 3 });
    expect(state.nodes[3].state).toBe('down');
    state = run(state, { type: 'registerNode', address: '10.0.0.3:7000', nodeId: 3, at: 9500 });
    expect(state.nodes[3].state).toBe('draining');
  });

  it('undrains: the node takes replicas again, a down one once back, and its drain no longer survives a restart', () => {
    let state = run(cluster(3), { type: 'markNodeDraining', nodeId: 2 });
    const version = state.mapVersion;
    state = run(state, { type: 'undrainNode', nodeId: 2 });
    expect(state.nodes[2]).toEqual({ id: 2, address: '10.0.0.2:7000', state: 'up', lastHeartbeatAt: 1000 });
    expect(state.mapVersion).toBe(version + 1);
    expect(run(state, { type: 'undrainNode', nodeId: 2 })).toBe(state);
    state = run(state, { type: 'registerNode', address: '10.0.0.2:7000', nodeId: 2, at: 2000 });
    expect(state.nodes[2].state).toBe('up');
    state = run(state, { type: 'markNodeDraining', nodeId: 3 }, { type: 'markNodeDown', nodeId: 3, at: 3000 }, { type: 'undrainNode', nodeId: 3 });
    expect(state.nodes[3].state).toBe('down');
    expect(run(state, { type: 'heartbeat', nodeId: 3, at: 4000 }).nodes[3].state).toBe('up');
    expect(decodeMetaCommand(encodeMetaCommand({ type: 'undrainNode', nodeId: 3 }))).toEqual({ type: 'undrainNode', nodeId: 3 });
    rejects(state, { type: 'undrainNode', nodeId: 9 }, /no node 9/);
  });

  it('rejects commands about unknown nodes and a taken address', () => {
    const state = run(cluster(2), { type: 'markNodeDown', nodeId: 2, at: 1 });
    rejects(state, { type: 'heartbeat', nodeId: 9, at: 1 }, /no node 9/);
    rejects(state, { type: 'registerNode', address: '10.0.0.1:7000', nodeId: 0, at: 1 }, /belongs to live node 1/);
    rejects(state, { type: 'registerNode', address: '', nodeId: 0, at: 1 }, /empty address/);
    // A dead node's address may be reused by a replacement.
    expect(applyMetaCommand(state, { type: 'registerNode', address: '10.0.0.2:7000', nodeId: 0, at: 1 }).nodeId).toBe(3);
  });
});

describe('tables', () => {
  it('creates a table: space ids for it and its indexes, partitions (epoch 1) for the table and its GSI, replicas placed', () => {
    const lsi: IndexSchema = { ...gsi('byDate'), kind: 'LSI', hashKey: { name: 'pk', type: 'S' } };
    const before = cluster(5);
    const result = applyMetaCommand(before, { type: 'createTable', record: table('Orders', [gsi('byUser'), lsi]), partitionCount: 4 });
    const record = result.table!;
    expect(record.schema.tableId).toBe(1);
    expect(record.schema.indexes.map((i) => i.indexId)).toEqual([2, 3]);
    expect(result.state.tables.Orders).toEqual(record);
    const parts = partitionList(result.state);
    // The GSI (space 2) gets as many partitions as the table, in its own space; the LSI (3) none:
    // its entries live with their items.
    expect(parts.map((p) => [p.id, p.tableId, p.epoch])).toEqual([
      [1, 1, 1],
      [2, 1, 1],
      [3, 1, 1],
      [4, 1, 1],
      [5, 2, 1],
      [6, 2, 1],
      [7, 2, 1],
      [8, 2, 1],
    ]);
    expect(result.createdPartitions!.map((p) => p.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Buffer.from(parts[4].startKey)).toEqual(Buffer.from(spaceRange(2).start));
    expect(Buffer.from(parts[7].endKey)).toEqual(Buffer.from(spaceRange(2).end));
    expect(findPartitionMapProblems(parts)).toEqual([]);
    for (const p of parts) {
      expect(p.replicas).toHaveLength(3);
      expect(new Set(p.replicas.map((r) => r.nodeId)).size).toBe(3);
      expect(p.replicas.every((r) => r.role === 'voter')).toBe(true);
    }
    expect(result.state.nextSpaceId).toBe(4);
    expect(result.state.nextPartitionId).toBe(9);
    expect(result.state.mapVersion).toBe(before.mapVersion + 1);
  });

  it('keeps the space ids a router allocated, and replaces ids meta never handed out or another table uses', () => {
    let state = cluster(3);
    for (let i = 0; i < 4; i++) state = run(state, { type: 'allocateSpaceId' }); // ids 1..4 handed out
    const ordersTemplate = table('Orders', [{ ...gsi('a'), indexId: 3 }]);
    const orders: TableRecord = { ...ordersTemplate, schema: { ...ordersTemplate.schema, tableId: 2 } };
    state = run(state, { type: 'createTable', record: orders, partitionCount: 1 });
    expect(state.tables.Orders.schema.tableId).toBe(2);
    expect(state.tables.Orders.schema.indexes[0].indexId).toBe(3);
    expect(state.nextSpaceId).toBe(5);
    // 3 is Orders', 9 was never handed out, 0 is "allocate", and 4 twice in one record only once.
    const users: TableRecord = {
      ...table('Users'),
      schema: { ...table('Users').schema, tableId: 3, indexes: [{ ...gsi('x'), indexId: 4 }, { ...gsi('y'), indexId: 4 }, { ...gsi('z'), indexId: 9 }, gsi('w')] },
    };
    const created = applyMetaCommand(state, { type: 'createTable', record: users, partitionCount: 1 });
    expect(created.table!.schema.tableId).toBe(5);
    expect(created.table!.schema.indexes.map((i) => i.indexId)).toEqual([4, 6, 7, 8]);
    expect(created.state.nextSpaceId).toBe(9);
    expect(partitionList(created.state).map((p) => p.tableId)).toEqual([2, 3, 5, 4, 6, 7, 8]);
  });

  it('places fewer replicas when fewer nodes are up, and none without nodes', () => {
    const one = applyMetaCommand(cluster(1), { type: 'createTable', record: table('T'), partitionCount: 2 });
    expect(partitionList(one.state).map((p) => p.replicas)).toEqual([[{ nodeId: 1, role: 'voter' }], [{ nodeId: 1, role: 'voter' }]]);
    rejects(emptyMetaState(), { type: 'createTable', record: table('T'), partitionCount: 1 }, /no node is up/);
    const down = run(cluster(2), { type: 'markNodeDown', nodeId: 1, at: 1 }, { type: 'markNodeDraining', nodeId: 2 });
    rejects(down, { type: 'createTable', record: table('T'), partitionCount: 1 }, /no node is up/);
  });

  it('rejects a duplicate table and bad partition counts', () => {
    const state = run(cluster(3), { type: 'createTable', record: table('T'), partitionCount: 1 });
    rejects(state, { type: 'createTable', record: table('T'), partitionCount: 1 }, /table T already exists/);
    rejects(state, { type: 'createTable', record: table('U'), partitionCount: 0 }, /partition count/);
    rejects(state, { type: 'createTable', record: table('U'), partitionCount: 1.5 }, /partition count/);
  });

  it('updates a table: keeps index ids, keeps a valid new id, allocates others; GSI partitions follow; map version + 1', () => {
    let state = run(cluster(3), { type: 'createTable', record: table('T', [gsi('a'), gsi('b')]), partitionCount: 2 }, { type: 'allocateSpaceId' });
    // T (1) split once: 3 partitions, so each new GSI gets 3.
    state = run(state, { type: 'splitPartition', partitionId: 1, splitKey: key(1, 0x40) });
    const partitionsBefore = partitionList(state);
    const versionBefore = state.mapVersion;
    const created = state.tables.T;
    const requested: TableRecord = {
      ...created,
      status: 'UPDATING',
      schema: { ...created.schema, indexes: [{ ...gsi('b'), indexId: 999 }, { ...gsi('c'), indexId: 4 }, { ...gsi('d'), indexId: 2 }] },
    };
    const result = applyMetaCommand(state, { type: 'updateTable', record: requested });
    state = result.state;
    expect(state.tables.T.status).toBe('UPDATING');
    // b keeps 3; c keeps the allocated 4; d asks for a's 2, still in the current record: fresh 5.
    expect(state.tables.T.schema.indexes.map((i) => [i.name, i.indexId])).toEqual([
      ['b', 3],
      ['c', 4],
      ['d', 5],
    ]);
    // a (2) is gone with its partitions, b (3) keeps its own, c and d get 3 each, ids from 8 on.
    const kept = partitionsBefore.filter((p) => p.tableId !== 2);
    expect(result.createdPartitions!.map((p) => [p.id, p.tableId, p.epoch])).toEqual([
      [8, 4, 1],
      [9, 4, 1],
      [10, 4, 1],
      [11, 5, 1],
      [12, 5, 1],
      [13, 5, 1],
    ]);
    expect(partitionList(state)).toEqual([...kept, ...result.createdPartitions!]);
    expect(findPartitionMapProblems(partitionList(state))).toEqual([]);
    expect(state.mapVersion).toBe(versionBefore + 1);
    // Nothing about the indexes changes: the partitions stay as they are.
    const unchanged = applyMetaCommand(state, { type: 'updateTable', record: { ...state.tables.T, status: 'ACTIVE' } });
    expect(unchanged.createdPartitions).toBeUndefined();
    expect(partitionList(unchanged.state)).toEqual(partitionList(state));
  });

  it('never brings a deleted index back under its id: a record read before the deletion is refused; deleted ids are retired, through snapshots', () => {
    let state = run(cluster(3), { type: 'createTable', record: table('T', [gsi('a'), gsi('b')]), partitionCount: 1 });
    // A router's view of T: a (2) and b (3).
    const stale = state.tables.T;
    expect(stale.schema.indexes.map((i) => [i.name, i.indexId])).toEqual([['a', 2], ['b', 3]]);
    state = run(state, { type: 'updateTable', record: { ...stale, schema: { ...stale.schema, indexes: [stale.schema.indexes[1]] } } });
    expect(state.retiredSpaceIds).toEqual([2]);
    expect(partitionList(state).some((p) => p.tableId === 2)).toBe(false);
    // Another router's view still shows a: its record (the end of b's backfill, a throughput change) would
    // have recreated a with new, empty partitions. Refused: made to an older revision; nothing changes.
    rejects(state, { type: 'updateTable', record: { ...stale, status: 'ACTIVE' } }, /is at revision 2, the change was made to revision 1/);
    // Even at the current revision, a record naming a under its retired id is refused as a conflict.
    const current = state.tables.T;
    const revived = { ...current, schema: { ...current.schema, indexes: stale.schema.indexes } };
    rejects(state, { type: 'updateTable', record: revived }, /index a has the space id 2 of a deleted index/);
    expect(() => applyMetaCommand(state, { type: 'updateTable', record: revived })).toThrow(expect.objectContaining({ reason: 'conflict' }));
    // The same index name with a fresh id is a new index.
    const fresh = run(state, { type: 'allocateSpaceId' });
    const added = run(fresh, { type: 'updateTable', record: { ...state.tables.T, schema: { ...state.tables.T.schema, indexes: [...state.tables.T.schema.indexes, { ...gsi('a'), indexId: 4 }] } } });
    expect(added.tables.T.schema.indexes.map((i) => [i.name, i.indexId])).toEqual([['b', 3], ['a', 4]]);
    // Carried by snapshots; a deleted table retires its own id and its indexes'; a new table asking for them gets fresh ones.
    expect(decodeMetaSnapshot(encodeMetaSnapshot(state)).retiredSpaceIds).toEqual([2]);
    state = run(state, { type: 'deleteTable', name: 'T' });
    expect(state.retiredSpaceIds).toEqual([1, 2, 3]);
    const reused = table('U', [{ ...gsi('x'), indexId: 3 }]);
    state = run(state, { type: 'createTable', record: { ...reused, schema: { ...reused.schema, tableId: 1 } }, partitionCount: 1 });
    expect([state.tables.U.schema.tableId, state.tables.U.schema.indexes[0].indexId]).toEqual([4, 5]);
  });

  it('makes table changes compare-and-set on the revision: a record computed from an older one is refused, so it cannot remove a GSI added meanwhile', () => {
    let state = run(cluster(3), { type: 'createTable', record: table('T'), partitionCount: 1 });
    expect(state.tables.T.revision).toBe(1);
    // Two routers read T at revision 1; one adds GSI g (a new space id), the other changes tags.
    const read = state.tables.T;
    state = run(state, { type: 'allocateSpaceId' });
    state = run(state, { type: 'updateTable', record: { ...read, schema: { ...read.schema, indexes: [{ ...gsi('g'), indexId: 2 }] } } });
    expect(state.tables.T.revision).toBe(2);
    expect(partitionList(state).some((p) => p.tableId === 2)).toBe(true);
    // The second record, made to revision 1, lacks g: applied, it would drop g and its partitions.
    rejects(state, { type: 'updateTable', record: { ...read, tags: { team: 'red' } } }, /T is at revision 2, the change was made to revision 1/);
    expect(() => applyMetaCommand(state, { type: 'updateTable', record: { ...read, tags: { team: 'red' } } })).toThrow(expect.objectContaining({ reason: 'staleRevision' }));
    // Made again to revision 2, it keeps g. The revision is the meta group's, whatever the record says.
    state = run(state, { type: 'updateTable', record: { ...state.tables.T, tags: { team: 'red' } } });
    expect([state.tables.T.revision, state.tables.T.schema.indexes.map((i) => i.name), state.tables.T.tags]).toEqual([3, ['g'], { team: 'red' }]);
    expect(decodeMetaSnapshot(encodeMetaSnapshot(state)).tables.T.revision).toBe(3);
    rejects(state, { type: 'updateTable', record: { ...state.tables.T, revision: 4 } }, /at revision 3, the change was made to revision 4/);
    // A record stored before revisions were kept counts as revision 0.
    const { revision: _, ...unrevised } = state.tables.T;
    const old: MetaState = { ...state, tables: { T: unrevised } };
    expect(run(old, { type: 'updateTable', record: { ...unrevised, tags: {}, revision: 0 } }).tables.T.revision).toBe(1);
    rejects(old, { type: 'updateTable', record: { ...unrevised, revision: 3 } }, /at revision 0, the change was made to revision 3/);
    rejects(old, { type: 'updateTable', record: { ...unrevised, revision: -1 } }, /malformed table record: bad revision/);
    // A table deleted and created again under its name since the record was read: stale too.
    rejects(state, { type: 'updateTable', record: { ...state.tables.T, schema: { ...state.tables.T.schema, tableId: 9 } } }, /table T has space id 1, not 9/);
    expect(() => applyMetaCommand(state, { type: 'updateTable', record: { ...state.tables.T, schema: { ...state.tables.T.schema, tableId: 9 } } })).toThrow(expect.objectContaining({ reason: 'staleRevision' }));
  });

  it('replays a log written before revisions were kept: its table changes carry none and apply as they did then', () => {
    // Entries as an older meta group wrote them (no revision anywhere), decoded and applied on restart.
    const created = table('T');
    expect(created.revision).toBeUndefined();
    // The table gets space id 1, the GSI 2.
    const withIndex = { ...created, schema: { ...created.schema, tableId: 1, indexes: [{ ...gsi('g'), indexId: 2 }] } };
    const entries: MetaCommand[] = [
      { type: 'createTable', record: created, partitionCount: 1 },
      { type: 'allocateSpaceId' },
      { type: 'updateTable', record: withIndex },
      { type: 'updateTable', record: { ...withIndex, tags: { team: 'red' } } },
    ];
    let state = cluster(3);
    for (const entry of entries) state = run(state, decodeMetaCommand(encodeMetaCommand(entry)));
    expect([state.tables.T.revision, state.tables.T.schema.indexes.map((i) => i.name), state.tables.T.tags]).toEqual([3, ['g'], { team: 'red' }]);
    expect(partitionList(state).some((p) => p.tableId === 2)).toBe(true);
  });

  it('refuses to add a GSI while no node is up to place its partitions, and changes nothing', () => {
    let state = run(cluster(1), { type: 'createTable', record: table('T'), partitionCount: 1 });
    state = run(state, { type: 'markNodeDown', nodeId: 1, at: 2 });
    const record = state.tables.T;
    rejects(state, { type: 'updateTable', record: { ...record, schema: { ...record.schema, indexes: [gsi('g')] } } }, /no node is up/);
  });

  it('refuses malformed table records instead of throwing while applying them', () => {
    const state = run(cluster(3), { type: 'createTable', record: table('T', [gsi('a')]), partitionCount: 1 });
    const base = table('U', [gsi('a')]);
    const malformed: unknown[] = [
      {},
      { ...base, schema: null },
      { ...base, schema: { ...base.schema, name: '' } },
      { ...base, schema: { ...base.schema, tableId: -1 } },
      { ...base, schema: { ...base.schema, hashKey: { name: 'pk', type: 'X' } } },
      { ...base, schema: { ...base.schema, indexes: 'none' } },
      { ...base, schema: { ...base.schema, indexes: [gsi('a'), gsi('a')] } },
      { ...base, schema: { ...base.schema, indexes: [{ ...gsi('a'), kind: 'MAGIC' }] } },
      { ...base, tags: undefined },
    ];
    for (const record of malformed) {
      rejects(state, { type: 'createTable', record: record as TableRecord, partitionCount: 1 }, /malformed table record/);
      rejects(state, { type: 'updateTable', record: record as TableRecord }, /malformed table record/);
    }
  });

  it('rejects updates of unknown tables, of the space id, of an index kind', () => {
    const state = run(cluster(3), { type: 'createTable', record: table('T', [gsi('a')]), partitionCount: 1 });
    const record = state.tables.T;
    rejects(state, { type: 'updateTable', record: table('Nope') }, /no table named Nope/);
    rejects(state, { type: 'updateTable', record: { ...record, schema: { ...record.schema, tableId: 7 } } }, /space id 1, not 7/);
    const lsi: IndexSchema = { ...record.schema.indexes[0], kind: 'LSI' };
    rejects(state, { type: 'updateTable', record: { ...record, schema: { ...record.schema, indexes: [lsi] } } }, /cannot change kind/);
  });

  it('keeps tables named like Object.prototype members, through snapshots', () => {
    let state = cluster(3);
    rejects(state, { type: 'deleteTable', name: 'constructor' }, /no table named constructor/);
    state = run(state, { type: 'createTable', record: table('constructor'), partitionCount: 1 }, { type: 'createTable', record: table('__proto__'), partitionCount: 1 });
    expect(Object.keys(state.tables).sort()).toEqual(['__proto__', 'constructor']);
    const restored = decodeMetaSnapshot(encodeMetaSnapshot(state));
    expect(Object.getPrototypeOf(restored.tables)).toBe(Object.prototype);
    expect(Object.keys(restored.tables).sort()).toEqual(['__proto__', 'constructor']);
    state = run(restored, { type: 'deleteTable', name: '__proto__' });
    expect(Object.keys(state.tables)).toEqual(['constructor']);
    expect(partitionList(state).map((p) => p.tableId)).toEqual([1]);
  });

  it('deletes a table with its partitions, and allocates loose space ids', () => {
    let state = run(cluster(3), { type: 'createTable', record: table('T', [gsi('a')]), partitionCount: 2 }, { type: 'createTable', record: table('U'), partitionCount: 1 });
    expect(partitionList(state).map((p) => p.tableId)).toEqual([1, 1, 2, 2, 3]);
    // The GSI's partitions split like any: they all go with the table.
    state = run(state, { type: 'splitPartition', partitionId: 3, splitKey: key(2, 0x10) });
    const result = applyMetaCommand(state, { type: 'deleteTable', name: 'T' });
    expect(result.table!.schema.name).toBe('T');
    state = result.state;
    expect(Object.keys(state.tables)).toEqual(['U']);
    expect(partitionList(state).map((p) => p.tableId)).toEqual([3]);
    rejects(state, { type: 'deleteTable', name: 'T' }, /no table named T/);
    const allocated = applyMetaCommand(state, { type: 'allocateSpaceId' });
    expect(allocated.spaceId).toBe(4);
    expect(allocated.state.nextSpaceId).toBe(5);
  });
});

describe('refusal reasons', () => {
  function reason(state: MetaState, command: MetaCommand): string {
    try {
      applyMetaCommand(state, command);
    } catch (error) {
      expect(error).toBeInstanceOf(MetaCommandError);
      return (error as MetaCommandError).reason;
    }
    throw new Error('the command was not refused');
  }

  it('tells the service what to answer', () => {
    const state = run(cluster(2), { type: 'createTable', record: table('T'), partitionCount: 1 });
    expect(reason(state, { type: 'createTable', record: table('T'), partitionCount: 1 })).toBe('tableExists');
    expect(reason(state, { type: 'deleteTable', name: 'U' })).toBe('noSuchTable');
    expect(reason(state, { type: 'updateTable', record: table('U') })).toBe('noSuchTable');
    expect(reason(state, { type: 'heartbeat', nodeId: 9, at: 1 })).toBe('noSuchNode');
    expect(reason(state, { type: 'setLeaderHint', partitionId: 9, nodeId: 1 })).toBe('noSuchPartition');
    expect(reason(state, { type: 'setReplicas', partitionId: 1, replicas: [{ nodeId: 1, role: 'voter' }], expectedEpoch: 5 })).toBe('conflict');
    expect(reason(state, { type: 'registerNode', address: '10.0.0.1:7000', nodeId: 0, at: 1 })).toBe('conflict');
    expect(reason(emptyMetaState(), { type: 'createTable', record: table('T'), partitionCount: 1 })).toBe('unavailable');
    expect(reason(state, { type: 'createTable', record: table('U'), partitionCount: 0 })).toBe('invalid');
  });
});

describe('partitions', () => {
  const base = run(cluster(4), { type: 'createTable', record: table('T'), partitionCount: 1 });

  it('splits at a key: both halves at epoch + 1, the right one a new id, same replicas', () => {
    const parent = base.partitions[1];
    const result = applyMetaCommand(base, { type: 'splitPartition', partitionId: 1, splitKey: key(1, 0x80), expectedEpoch: 1 });
    const [left, right] = partitionList(result.state);
    expect(left).toMatchObject({ id: 1, epoch: 2, replicas: parent.replicas });
    expect(right).toMatchObject({ id: 2, epoch: 2, replicas: parent.replicas, tableId: 1 });
    expect(Buffer.from(left.endKey)).toEqual(Buffer.from(key(1, 0x80)));
    expect(Buffer.from(right.startKey)).toEqual(Buffer.from(key(1, 0x80)));
    expect(result.createdPartitions).toEqual([right]);
    expect(findPartitionMapProblems(partitionList(result.state))).toEqual([]);
  });

  it('rejects split keys outside or at the start of the partition, and stale epochs', () => {
    rejects(base, { type: 'splitPartition', partitionId: 1, splitKey: spaceRange(1).start }, /not inside partition 1/);
    rejects(base, { type: 'splitPartition', partitionId: 1, splitKey: spaceRange(1).end }, /not inside partition 1/);
    rejects(base, { type: 'splitPartition', partitionId: 1, splitKey: key(2, 1) }, /not inside partition 1/);
    rejects(base, { type: 'splitPartition', partitionId: 1, splitKey: key(1, 1), expectedEpoch: 7 }, /at epoch 1, not 7/);
    rejects(base, { type: 'splitPartition', partitionId: 5, splitKey: key(1, 1) }, /no partition 5/);
  });

  it('sets replicas (epoch + 1, sorted, the leader hint kept only while it is a voter) and leader hints', () => {
    let state = run(base, { type: 'setLeaderHint', partitionId: 1, nodeId: base.partitions[1].replicas[0].nodeId });
    const leader = state.partitions[1].leaderHint!;
    const others = [1, 2, 3, 4].filter((n) => n !== leader);
    state = run(state, {
      type: 'setReplicas',
      partitionId: 1,
      expectedEpoch: 1,
      replicas: [
        { nodeId: others[1], role: 'voter' },
        { nodeId: leader, role: 'voter' },
        { nodeId: others[0], role: 'learner' },
      ],
    });
    expect(state.partitions[1].epoch).toBe(2);
    expect(state.partitions[1].replicas.map((r) => r.nodeId)).toEqual([...[others[1], leader, others[0]]].sort((a, b) => a - b));
    expect(state.partitions[1].leaderHint).toBe(leader);
    state = run(state, { type: 'setReplicas', partitionId: 1, replicas: [{ nodeId: others[1], role: 'voter' }] });
    expect(state.partitions[1].leaderHint).toBeUndefined();
    rejects(state, { type: 'setLeaderHint', partitionId: 1, nodeId: leader }, /not a voter of partition 1/);
  });

  it('rejects replica sets with duplicates, unknown nodes, no voter, a stale epoch', () => {
    rejects(base, { type: 'setReplicas', partitionId: 1, replicas: [{ nodeId: 1, role: 'voter' }, { nodeId: 1, role: 'learner' }] }, /node 1 holds two replicas/);
    rejects(base, { type: 'setReplicas', partitionId: 1, replicas: [{ nodeId: 9, role: 'voter' }] }, /no node 9/);
    rejects(base, { type: 'setReplicas', partitionId: 1, replicas: [{ nodeId: 1, role: 'learner' }] }, /needs a voter/);
    rejects(base, { type: 'setReplicas', partitionId: 1, replicas: [{ nodeId: 1, role: 'voter' }], expectedEpoch: 0 }, /at epoch 1, not 0/);
  });
});

describe('snapshots and determinism', () => {
  /** A or B, asking for space ids of its own choosing (kept only when meta handed them out and they are free). */
  const recordArb: fc.Arbitrary<TableRecord> = fc
    .tuple(fc.constantFrom('A', 'B'), fc.nat(8), fc.array(fc.tuple(fc.constantFrom('g', 'h', 'l'), fc.nat(8)), { maxLength: 3 }))
    .map(([name, tableId, indexes]) => {
      const unique = [...new Map(indexes).entries()];
      const record = table(name, unique.map(([index, indexId]) => ({ ...gsi(index), kind: index === 'l' ? 'LSI' : 'GSI', indexId })));
      return { ...record, schema: { ...record.schema, tableId } };
    });

  /** Every table and index has a space id of its own, handed out by meta. */
  function spaceIdsProblems(state: MetaState): string[] {
    const owners = new Map<number, string>();
    const problems: string[] = [];
    for (const record of Object.values(state.tables)) {
      for (const [owner, id] of [[record.schema.name, record.schema.tableId], ...record.schema.indexes.map((i) => [`${record.schema.name}.${i.name}`, i.indexId])] as [string, number][]) {
        if (id < 1 || id >= state.nextSpaceId) problems.push(`${owner} has space id ${id}, never handed out`);
        if (owners.has(id)) problems.push(`${owner} and ${owners.get(id)} share space id ${id}`);
        owners.set(id, owner);
      }
    }
    return problems;
  }

  /** Partitions exist exactly for every table and every GSI (LSIs live with their items). */
  function partitionSpaceProblems(state: MetaState): string[] {
    const spaces = new Set(Object.values(state.partitions).map((p) => p.tableId));
    const wanted = new Set<number>();
    for (const record of Object.values(state.tables)) {
      wanted.add(record.schema.tableId);
      for (const index of record.schema.indexes) if (index.kind === 'GSI') wanted.add(index.indexId);
    }
    return [
      ...[...spaces].filter((space) => !wanted.has(space)).map((space) => `partitions of space ${space}, no table's nor GSI's`),
      ...[...wanted].filter((space) => !spaces.has(space)).map((space) => `space ${space} has no partition`),
    ];
  }

  const commandArb: fc.Arbitrary<MetaCommand> = fc.oneof(
    fc.record({ type: fc.constant('registerNode' as const), address: fc.constantFrom('a:1', 'b:1', 'c:1', 'd:1', 'e:1'), nodeId: fc.nat(6), at: fc.nat(100_000) }),
    fc.record({ type: fc.constant('heartbeat' as const), nodeId: fc.nat(6), at: fc.nat(100_000) }),
    fc.record({ type: fc.constant('markNodeDown' as const), nodeId: fc.nat(6), at: fc.nat(100_000) }),
    fc.record({ type: fc.constant('markNodeDraining' as const), nodeId: fc.nat(6) }),
    fc.record({
      type: fc.constant('createTable' as const),
      record: recordArb,
      partitionCount: fc.integer({ min: 1, max: 4 }),
    }),
    fc.record({ type: fc.constant('updateTable' as const), record: recordArb }),
    fc.record({ type: fc.constant('deleteTable' as const), name: fc.constantFrom('A', 'B') }),
    fc.record({ type: fc.constant('allocateSpaceId' as const) }),
    fc.record({
      type: fc.constant('splitPartition' as const),
      partitionId: fc.nat(12),
      splitKey: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: 1, maxLength: 9 })).map(([t, b]) => key(t, ...b)),
    }),
    fc.record({
      type: fc.constant('setReplicas' as const),
      partitionId: fc.nat(12),
      replicas: fc.uniqueArray(fc.record({ nodeId: fc.nat(6), role: fc.constantFrom('voter' as const, 'learner' as const) }), {
        selector: (r) => r.nodeId,
        maxLength: 4,
      }),
    }),
    fc.record({ type: fc.constant('setLeaderHint' as const), partitionId: fc.nat(12), nodeId: fc.nat(6) }),
  );

  function applyAll(commands: MetaCommand[]): { state: MetaState; outcomes: string[] } {
    let state = emptyMetaState();
    const outcomes: string[] = [];
    for (const command of commands) {
      try {
        state = applyMetaCommand(state, command).state;
        outcomes.push('ok');
      } catch (error) {
        expect(error).toBeInstanceOf(MetaCommandError);
        outcomes.push((error as Error).message);
      }
    }
    return { state, outcomes };
  }

  it('same commands give byte-identical snapshots; the map stays consistent; snapshots restore exactly', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 60 }), (commands) => {
        const a = applyAll(commands);
        // The other replica applies them as they come out of the log.
        const logged = commands.map(encodeMetaCommand);
        const b = applyAll(logged.map(decodeMetaCommand));
        expect(logged.map((bytes) => Buffer.from(encodeMetaCommand(decodeMetaCommand(bytes))))).toEqual(logged.map((bytes) => Buffer.from(bytes)));
        expect(b.outcomes).toEqual(a.outcomes);
        const snapshot = encodeMetaSnapshot(a.state);
        expect(Buffer.from(encodeMetaSnapshot(b.state))).toEqual(Buffer.from(snapshot));
        expect(findPartitionMapProblems(partitionList(a.state))).toEqual([]);
        expect(spaceIdsProblems(a.state)).toEqual([]);
        expect(partitionSpaceProblems(a.state)).toEqual([]);
        const restored = decodeMetaSnapshot(snapshot);
        expect(Buffer.from(encodeMetaSnapshot(restored))).toEqual(Buffer.from(snapshot));
        // The restored state carries on exactly as the original.
        const more = commands.slice(0, 10);
        let x = a.state;
        let y = restored;
        for (const c of more) {
          try {
            x = applyMetaCommand(x, c).state;
          } catch {
            expect(() => applyMetaCommand(y, c)).toThrow(MetaCommandError);
            continue;
          }
          y = applyMetaCommand(y, c).state;
        }
        expect(Buffer.from(encodeMetaSnapshot(y))).toEqual(Buffer.from(encodeMetaSnapshot(x)));
      }),
      { numRuns: 150 },
    );
  });

  it('never changes the state it is given', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 40 }), (commands) => {
        let state = emptyMetaState();
        for (const command of commands) {
          try {
            state = applyMetaCommand(state, command).state;
          } catch {
            // a rejected command leaves `state` as it was
          }
        }
        const frozen = encodeMetaSnapshot(state);
        for (const command of commands) {
          try {
            applyMetaCommand(state, command);
          } catch {
            // rejections are fine here
          }
        }
        expect(Buffer.from(encodeMetaSnapshot(state))).toEqual(Buffer.from(frozen));
      }),
      { numRuns: 100 },
    );
  });

  it('rejects unknown commands from the log', () => {
    expect(() => decodeMetaCommand(new TextEncoder().encode('{"type":"dropEverything"}'))).toThrow(/unknown meta command dropEverything/);
  });

  it('rejects a snapshot of another format', () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ format: 99, state: {} }));
    expect(() => decodeMetaSnapshot(bytes)).toThrow(/unknown meta snapshot format 99/);
  });
});
