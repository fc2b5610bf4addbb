import { describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.ts';

describe('cluster', () => {
  it('elects a leader and replicates', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    c.propose(l.id, 'a');
    c.propose(l.id, 'b');
    for (const n of c.nodes.values()) expect(n.applied).toEqual(['a', 'b']);
  });
});
