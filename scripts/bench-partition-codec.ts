/**
 * CPU per request of the node's side of the hot PartitionService calls: the request decoded (and
 * converted to the model by partition-codec) and the answer encoded, by protobuf-es reflection
 * (`fromBinary` + `*ToWire` + `toBinary`, what the node did before) against the hand-written codec
 * (partition-answers.ts). Items of 1 KB as the cluster bench writes them; WriteMany of 16 puts.
 *
 *   npx node scripts/bench-partition-codec.ts [calls per measurement, default 20000]
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type * as model from '@shoal/model';
import {
  GetManyRequestSchema,
  GetManyResponseSchema,
  GetRequestSchema,
  GetResponseSchema,
  WriteManyRequestSchema,
  WriteManyResponseSchema,
  WriteRequestSchema,
  WriteResponseSchema,
  decodeGetManyRequest,
  decodeGetRequest,
  decodeWriteManyRequest,
  decodeWriteRequest,
  encodeGetManyRequest,
  encodeGetManyResponse,
  encodeGetRequest,
  encodeGetResponse,
  encodeWriteManyRequest,
  encodeWriteManyResponse,
  encodeWriteRequest,
  encodeWriteResponse,
  getManyRequestFromWire,
  getManyResultsToWire,
  getRequestFromWire,
  getResultToWire,
  writeManyRequestFromWire,
  writeManyResultsToWire,
  writeRequestFromWire,
  writeResultToWire,
} from '@shoal/proto';

const calls = Number(process.argv[2] ?? 20_000);
const BATCH = 16;
const table: model.TableSchema = { name: 'bench', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const itemOf = (n: number): model.Item => ({ pk: { S: `key-${n}` }, payload: { S: 'x'.repeat(1_000) } });
const target = { partitionId: 3n, epoch: 2n };
const put = (n: number): model.PartitionWrite => ({ operations: [{ table, kind: 'Put', key: { pk: { S: `key-${n}` } }, item: itemOf(n) }] });
const written: model.PartitionWriteResult = { applied: true, outcomes: [{ status: 'ok' }] };
const found = (n: number): model.FoundItem => {
  const item = itemOf(n);
  return { item, size: 1_010, json: JSON.stringify(item) };
};
const options = { consistent: false };

const writeBytes = encodeWriteRequest(target, put(1)).message;
const writeManyBytes = encodeWriteManyRequest(target, Array.from({ length: BATCH }, (_, n) => put(n))).message;
const getBytes = encodeGetRequest(target, { table, key: { pk: { S: 'key-1' } } }, options).message;
const getManyBytes = encodeGetManyRequest(target, Array.from({ length: BATCH }, (_, n) => ({ table, key: { pk: { S: `key-${n}` } } })), options).message;
const writeResults = Array.from({ length: BATCH }, () => written);
const getResults = Array.from({ length: BATCH }, (_, n) => found(n));
const one = found(1);

interface Case {
  name: string;
  requests: number;
  reflection: () => unknown;
  hand: () => unknown;
}

const cases: Case[] = [
  {
    name: 'Write',
    requests: 1,
    reflection: () => [writeRequestFromWire(fromBinary(WriteRequestSchema, writeBytes)), toBinary(WriteResponseSchema, writeResultToWire(written, 9n))],
    hand: () => [writeRequestFromWire(decodeWriteRequest(writeBytes)), encodeWriteResponse(written, 9n)],
  },
  {
    name: `WriteMany of ${BATCH}`,
    requests: BATCH,
    reflection: () => [writeManyRequestFromWire(fromBinary(WriteManyRequestSchema, writeManyBytes)), toBinary(WriteManyResponseSchema, writeManyResultsToWire(writeResults, 9n))],
    hand: () => [writeManyRequestFromWire(decodeWriteManyRequest(writeManyBytes)), encodeWriteManyResponse(writeResults, 9n)],
  },
  {
    name: 'Get',
    requests: 1,
    reflection: () => [getRequestFromWire(fromBinary(GetRequestSchema, getBytes)), toBinary(GetResponseSchema, getResultToWire(one))],
    hand: () => [getRequestFromWire(decodeGetRequest(getBytes)), encodeGetResponse(one)],
  },
  {
    name: `GetMany of ${BATCH}`,
    requests: BATCH,
    reflection: () => [getManyRequestFromWire(fromBinary(GetManyRequestSchema, getManyBytes)), toBinary(GetManyResponseSchema, getManyResultsToWire(getResults))],
    hand: () => [getManyRequestFromWire(decodeGetManyRequest(getManyBytes)), encodeGetManyResponse(getResults)],
  },
];

/** CPU µs per request over `calls` calls (after a warm-up of a tenth). */
function measure(run: () => unknown, requests: number): number {
  for (let i = 0; i < calls / 10; i++) run();
  const started = process.cpuUsage();
  for (let i = 0; i < calls; i++) run();
  const used = process.cpuUsage(started);
  return (used.user + used.system) / (calls * requests);
}

console.log(`node ${process.version}; ${calls} calls a measurement; CPU µs per request (decode + convert + encode the answer)`);
/** The least of five alternated measurements: the one least disturbed by GC and the machine's load. */
const ROUNDS = 5;
for (const test of cases) {
  let reflection = Infinity;
  let hand = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    reflection = Math.min(reflection, measure(test.reflection, test.requests));
    hand = Math.min(hand, measure(test.hand, test.requests));
  }
  console.log(`${test.name.padEnd(16)} protobuf-es ${reflection.toFixed(2).padStart(7)}  by hand ${hand.toFixed(2).padStart(7)}  (${(reflection / hand).toFixed(1)}x)`);
}
