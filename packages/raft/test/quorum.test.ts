import { describe, expect, it } from 'vitest';
import {
  jointCommittedIndex,
  jointVoteResult,
  majorityCommittedIndex,
  majorityVoteResult,
} from '../src/quorum.ts';
import type { NodeId } from '../src/types.ts';

const acked = (m: Record<number, number | undefined>) => (id: NodeId) => m[id];
const votes = (m: Record<number, boolean | undefined>) =>
  new Map(Object.entries(m).flatMap(([k, v]) => (v === undefined ? [] : [[Number(k), v] as const])));

describe('majority committed index', () => {
  it.each([
    { voters: [], acks: {}, index: Infinity },
    { voters: [1], acks: { 1: 5 }, index: 5 },
    { voters: [1], acks: {}, index: 0 },
    { voters: [1, 2], acks: { 1: 5, 2: 3 }, index: 3 },
    { voters: [1, 2, 3], acks: { 1: 5, 2: 3, 3: 9 }, index: 5 },
    { voters: [1, 2, 3], acks: { 1: 5 }, index: 0 },
    { voters: [1, 2, 3], acks: { 1: 5, 2: 4 }, index: 4 },
    { voters: [1, 2, 3, 4], acks: { 1: 5, 2: 4, 3: 3, 4: 2 }, index: 3 },
    { voters: [1, 2, 3, 4, 5], acks: { 1: 9, 2: 8, 3: 7, 4: 1, 5: 1 }, index: 7 },
    // acknowledgements from non-voters do not count
    { voters: [1, 2, 3], acks: { 1: 5, 7: 5, 8: 5 }, index: 0 },
  ])('voters $voters with acks $acks commit $index', ({ voters, acks, index }) => {
    expect(majorityCommittedIndex(new Set(voters), acked(acks))).toBe(index);
  });

  it('a joint configuration commits what both halves commit', () => {
    const config = { incoming: new Set([1, 2, 3]), outgoing: new Set([3, 4, 5]) };
    expect(jointCommittedIndex(config, acked({ 1: 9, 2: 9, 3: 2, 4: 5, 5: 5 }))).toBe(5);
    expect(jointCommittedIndex(config, acked({ 1: 9, 2: 9, 3: 9 }))).toBe(0);
    expect(jointCommittedIndex({ incoming: new Set([1, 2, 3]), outgoing: new Set() }, acked({ 1: 4, 2: 4 }))).toBe(4);
  });
});

describe('vote result', () => {
  it.each([
    { voters: [], v: {}, result: 'won' },
    { voters: [1], v: {}, result: 'pending' },
    { voters: [1], v: { 1: false }, result: 'lost' },
    { voters: [1, 2, 3], v: { 1: true }, result: 'pending' },
    { voters: [1, 2, 3], v: { 1: true, 2: true }, result: 'won' },
    { voters: [1, 2, 3], v: { 1: true, 2: false }, result: 'pending' },
    { voters: [1, 2, 3], v: { 1: false, 2: false }, result: 'lost' },
    { voters: [1, 2, 3, 4], v: { 1: true, 2: true }, result: 'pending' },
    { voters: [1, 2, 3, 4], v: { 1: false, 2: false }, result: 'lost' },
    { voters: [1, 2, 3], v: { 7: true, 8: true }, result: 'pending' },
  ])('voters $voters with votes $v: $result', ({ voters, v, result }) => {
    expect(majorityVoteResult(new Set(voters), votes(v))).toBe(result);
  });

  it('a joint election is lost if either half loses, won only if both win', () => {
    const config = { incoming: new Set([1, 2, 3]), outgoing: new Set([1, 4, 5]) };
    expect(jointVoteResult(config, votes({ 1: true, 2: true }))).toBe('pending');
    expect(jointVoteResult(config, votes({ 1: true, 2: true, 4: true }))).toBe('won');
    expect(jointVoteResult(config, votes({ 1: true, 2: true, 4: false, 5: false }))).toBe('lost');
    expect(jointVoteResult(config, votes({ 2: false, 3: false, 4: true, 5: true }))).toBe('lost');
  });
});
