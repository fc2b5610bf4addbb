import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeId } from '@shoal/raft';
import { ForkedNode } from './fixtures/forked-node.ts';
import type { HostCommand, HostState, ProposeOutcome } from './fixtures/host-node.ts';
import { eventually } from './fixtures/eventually.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/host-node.ts', import.meta.url));
const GROUP = 1;
const NODES: NodeId[] = [1, 2, 3];

/** One storage node process running a MultiRaftHost. */
class HostChild extends ForkedNode<HostCommand> {
  constructor(nodeId: NodeId) {
    super(FIXTURE, nodeId);
  }

  state(): Promise<HostState> {
    return this.request<HostState>({ op: 'state', groupId: GROUP });
  }
}

/** The leader all the given live nodes agree on, if they do. */
async function agreedLeader(nodes: readonly HostChild[]): Promise<HostChild | undefined> {
  const states = await Promise.all(nodes.map((n) => n.state()));
  const leaders = new Set(states.map((s) => s.status[0]?.leader ?? 0));
  if (leaders.size !== 1) return undefined;
  return nodes.find((n, i) => n.nodeId === states[i].status[0]?.leader && states[i].status[0]?.role === 'leader');
}

/** Proposes writes one by one at the leader; returns the keys the leader acknowledged. */
async function writeSome(leader: HostChild, prefix: string, count: number): Promise<string[]> {
  const acknowledged: string[] = [];
  for (let i = 0; i < count; i++) {
    const outcome = await leader.request<ProposeOutcome>({ op: 'propose', groupId: GROUP, key: `${prefix}${i}`, value: `${prefix}-value-${i}` });
    if (outcome.ok) acknowledged.push(`${prefix}${i}`);
  }
  return acknowledged;
}

describe('MultiRaftHost across three processes over RaftTransport', () => {
  let root = '';
  let nodes: HostChild[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-proc-'));
    nodes = NODES.map((id) => new HostChild(id));
    await Promise.all(nodes.map(async (n) => (n.address = await n.request<string>({ op: 'start', nodeId: n.nodeId, dir: join(root, `node-${n.nodeId}`) }))));
    for (const n of nodes) {
      for (const peer of nodes) if (peer !== n) await n.request({ op: 'setPeer', nodeId: peer.nodeId, address: peer.address });
    }
    for (const n of nodes) await n.request({ op: 'createGroup', groupId: GROUP, voters: NODES });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(root, { recursive: true, force: true });
  });

  it('replicates writes and keeps every acknowledged write after SIGKILL of the leader', { timeout: 60_000 }, async () => {
    const leader = await eventually(() => agreedLeader(nodes), 'a leader');
    const before = await writeSome(leader, 'a', 50);
    expect(before.length).toBe(50);
    await eventually(async () => {
      const states = await Promise.all(nodes.map((n) => n.state()));
      return states.every((s) => before.every((k) => s.entries.some(([key]) => key === k))) ? true : undefined;
    }, 'writes on all three');

    await leader.kill();
    const survivors = nodes.filter((n) => n !== leader);
    // An election timeout is 10-20 ticks of 20 ms: a new leader well within 400 polls of 25 ms.
    const successor = await eventually(() => agreedLeader(survivors), 'a new leader');
    expect(successor.nodeId).not.toBe(leader.nodeId);
    const after = await writeSome(successor, 'b', 20);
    expect(after.length).toBe(20);

    const acknowledged = [...before, ...after];
    await eventually(async () => {
      const states = await Promise.all(survivors.map((n) => n.state()));
      return states.every((s) => acknowledged.every((k) => s.entries.some(([key]) => key === k))) ? true : undefined;
    }, 'acknowledged writes on the survivors');
    const [first, second] = await Promise.all(survivors.map((n) => n.state()));
    expect(first.entries).toEqual(second.entries);
    expect(first.entries.length).toBe(acknowledged.length);
  });
});
