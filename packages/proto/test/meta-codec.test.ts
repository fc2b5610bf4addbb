import { create } from '@bufbuild/protobuf';
import type { MessageShape, UnknownEnum } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type * as model from '@shoal/model';
import {
  GetPartitionMapResponseSchema,
  NodeDescriptorSchema,
  NodeState,
  PartitionDescriptorSchema,
  ReplicaRole,
  RpcError,
  Status,
  partitionDescriptorFromWire,
  partitionDescriptorToWire,
  partitionMapResponseFromWire,
  partitionMapResponseToWire,
} from '../src/index.ts';
import type { PartitionMapAnswer } from '../src/index.ts';
import { overTheWire } from './over-the-wire.ts';


const id = fc.oneof(fc.constantFrom(1, Number.MAX_SAFE_INTEGER), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
const counter = fc.oneof(fc.constantFrom(0, Number.MAX_SAFE_INTEGER), fc.nat());
const key = fc.uint8Array({ maxLength: 12 });

const replica: fc.Arbitrary<model.ReplicaDescriptor> = fc.record({ nodeId: id, role: fc.constantFrom('voter', 'learner') });

const partition: fc.Arbitrary<model.PartitionDescriptor> = fc.record(
  {
    id,
    tableId: fc.oneof(fc.constantFrom(0, 0xffffffff), fc.nat()),
    startKey: key,
    endKey: key,
    epoch: counter,
    replicas: fc.array(replica, { maxLength: 5 }),
    leaderHint: id,
  },
  { requiredKeys: ['id', 'tableId', 'startKey', 'endKey', 'epoch', 'replicas'] },
);

const node = fc
  .record({ id, address: fc.string({ maxLength: 20 }), state: fc.constantFrom(NodeState.JOINING, NodeState.UP, NodeState.DRAINING, NodeState.DOWN) })
  .map((n) => create(NodeDescriptorSchema, { id: BigInt(n.id), address: n.address, state: n.state }));

const table: fc.Arbitrary<model.TableRecord> = fc
  .record({ name: fc.string({ minLength: 1, maxLength: 12 }), tableId: fc.integer({ min: 1, max: 1000 }), createdAt: fc.nat() })
  .map(({ name, tableId, createdAt }) => ({
    schema: { name, tableId, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
    status: 'ACTIVE',
    createdAt,
    billingMode: 'PAY_PER_REQUEST',
    tags: {},
  }));

const answer: fc.Arbitrary<PartitionMapAnswer> = fc.oneof(
  fc.record({ notModified: fc.constant(true as const), version: counter }),
  fc.record({
    notModified: fc.constant(false as const),
    version: counter,
    partitions: fc.array(partition, { maxLength: 4 }),
    nodes: fc.array(node, { maxLength: 3 }),
    tables: fc.array(table, { maxLength: 3 }),
  }),
);

const runs = { seed: 19, numRuns: 200 };

/** An enum value this build does not know, as protobuf decodes one from a newer peer. */
const unknownEnum = (value: number): UnknownEnum => value as UnknownEnum;

/** A valid wire descriptor to spoil one field of at a time. */
function wirePartition(): MessageShape<typeof PartitionDescriptorSchema> {
  return create(PartitionDescriptorSchema, {
    id: 7n,
    tableId: 3,
    startKey: new Uint8Array([1]),
    endKey: new Uint8Array([2]),
    epoch: 4n,
    replicas: [{ nodeId: 1n, role: ReplicaRole.VOTER }],
    leaderHint: 1n,
  });
}

function expectInvalid(decode: () => unknown, message: RegExp): void {
  let caught: unknown;
  try {
    decode();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(RpcError);
  expect((caught as RpcError).code).toBe(Status.INVALID_ARGUMENT);
  expect((caught as RpcError).message).toMatch(message);
}

describe('partition descriptor codec', () => {
  it('round-trips through protobuf binary, with and without a leader hint', () => {
    fc.assert(
      fc.property(partition, (p) => {
        const back = partitionDescriptorFromWire(overTheWire(PartitionDescriptorSchema, partitionDescriptorToWire(p)));
        expect(back).toEqual(p);
        expect('leaderHint' in back).toBe(p.leaderHint !== undefined);
      }),
      runs,
    );
  });

  it('maps roles and the unknown leader to their wire values', () => {
    const wire = partitionDescriptorToWire({
      id: 2,
      tableId: 1,
      startKey: new Uint8Array(),
      endKey: new Uint8Array(),
      epoch: 1,
      replicas: [
        { nodeId: 5, role: 'voter' },
        { nodeId: 6, role: 'learner' },
      ],
    });
    expect(wire.replicas.map((r) => r.role)).toEqual([ReplicaRole.VOTER, ReplicaRole.LEARNER]);
    expect(wire.leaderHint).toBe(0n);
  });

  it('refuses an unknown or unspecified replica role', () => {
    for (const role of [ReplicaRole.UNSPECIFIED, unknownEnum(9)]) {
      const wire = wirePartition();
      wire.replicas[0].role = role;
      expectInvalid(() => partitionDescriptorFromWire(wire), new RegExp(`replica role ${role}`));
    }
  });

  it('refuses ids and counters above 2^53 - 1 instead of rounding them', () => {
    const tooBig = 2n ** 53n;
    const spoilers: [string, (w: MessageShape<typeof PartitionDescriptorSchema>) => void][] = [
      ['partition id', (w) => (w.id = tooBig)],
      ['epoch', (w) => (w.epoch = tooBig)],
      ['leader hint', (w) => (w.leaderHint = 2n ** 64n - 1n)],
      ['replica node id', (w) => (w.replicas[0].nodeId = tooBig)],
    ];
    for (const [what, spoil] of spoilers) {
      const wire = wirePartition();
      spoil(wire);
      expectInvalid(() => partitionDescriptorFromWire(wire), new RegExp(`${what} \\d+ exceeds 2\\^53 - 1`));
    }
    const edge = wirePartition();
    edge.id = BigInt(Number.MAX_SAFE_INTEGER);
    expect(partitionDescriptorFromWire(edge).id).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('refuses a missing descriptor, partition id or replica node id', () => {
    expectInvalid(() => partitionDescriptorFromWire(undefined), /partition descriptor missing/);
    const noId = wirePartition();
    noId.id = 0n;
    expectInvalid(() => partitionDescriptorFromWire(noId), /partition id missing/);
    const noNode = wirePartition();
    noNode.replicas[0].nodeId = 0n;
    expectInvalid(() => partitionDescriptorFromWire(noNode), /replica node id missing/);
  });

  it('refuses to send ids the wire cannot carry', () => {
    const base: model.PartitionDescriptor = { id: 1, tableId: 1, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: 1, replicas: [] };
    expect(() => partitionDescriptorToWire({ ...base, id: 0 })).toThrow(RangeError);
    expect(() => partitionDescriptorToWire({ ...base, id: 2 ** 53 })).toThrow(RangeError);
    expect(() => partitionDescriptorToWire({ ...base, epoch: 1.5 })).toThrow(RangeError);
    expect(() => partitionDescriptorToWire({ ...base, tableId: 2 ** 32 })).toThrow(RangeError);
    expect(() => partitionDescriptorToWire({ ...base, leaderHint: 0 })).toThrow(RangeError);
    expect(() => partitionDescriptorToWire({ ...base, replicas: [{ nodeId: -1, role: 'voter' }] })).toThrow(RangeError);
  });
});

describe('partition map response codec', () => {
  it('round-trips through protobuf binary, including not-modified answers', () => {
    fc.assert(
      fc.property(answer, (a) => {
        const back = partitionMapResponseFromWire(overTheWire(GetPartitionMapResponseSchema, partitionMapResponseToWire(a)));
        expect(back).toEqual(a);
      }),
      runs,
    );
  });

  it('refuses a version above 2^53 - 1 and a not-modified answer with contents', () => {
    const tooNew = create(GetPartitionMapResponseSchema, { version: 2n ** 53n });
    expectInvalid(() => partitionMapResponseFromWire(tooNew), /partition map version \d+ exceeds/);
    const contradictory = create(GetPartitionMapResponseSchema, { version: 3n, notModified: true, partitions: [wirePartition()] });
    expectInvalid(() => partitionMapResponseFromWire(contradictory), /not modified, yet with contents/);
    const withTables = create(GetPartitionMapResponseSchema, { version: 3n, notModified: true, tables: [{ json: new TextEncoder().encode('{}') }] });
    expectInvalid(() => partitionMapResponseFromWire(withTables), /not modified, yet with contents/);
  });

  it('refuses a bad partition inside the map', () => {
    const spoiled = wirePartition();
    spoiled.replicas[0].role = unknownEnum(7);
    const response = create(GetPartitionMapResponseSchema, { version: 1n, partitions: [wirePartition(), spoiled] });
    expectInvalid(() => partitionMapResponseFromWire(response), /replica role 7/);
  });
});
