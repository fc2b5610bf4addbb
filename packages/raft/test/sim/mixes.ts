import type { NetworkProfile } from './network.ts';

/** The faults a mix draws from. */
export type FaultKind =
  | 'partition-majority'
  | 'isolate-leader'
  | 'one-way-leader'
  | 'flap-link'
  | 'heal'
  | 'crash'
  | 'crash-leader'
  | 'crash-mid-ready'
  /** The process freezes (GC, VM stall): no ticks, nothing handled, then it resumes. */
  | 'pause-leader'
  | 'add-learner'
  | 'promote-learner'
  | 'remove-voter'
  | 'joint-change'
  | 'transfer-leader'
  /** A transfer, then the old leader stops hearing anyone (it may still believe it leads). */
  | 'transfer-then-deafen-leader';

export interface MixSpec {
  network: NetworkProfile;
  /** Time between fault draws. */
  faultIntervalMs: [min: number, max: number];
  /** How long a partition, isolation or flapping lasts, and how long a crashed node stays down. */
  faultDurationMs: [min: number, max: number];
  /** Relative weights of the faults drawn. */
  faults: Partial<Record<FaultKind, number>>;
}

const LOSSY: NetworkProfile = {
  minDelayMs: 1,
  maxDelayMs: 15,
  dropRate: 0.04,
  duplicateRate: 0.03,
  slowRate: 0.05,
  slowDelayMs: 120,
};

export const MIXES = {
  calm: {
    network: { minDelayMs: 1, maxDelayMs: 10, dropRate: 0.01, duplicateRate: 0.01, slowRate: 0.02, slowDelayMs: 60 },
    faultIntervalMs: [500, 1500],
    faultDurationMs: [100, 400],
    faults: { 'transfer-leader': 1 },
  },
  'majority-partition': {
    network: LOSSY,
    faultIntervalMs: [150, 600],
    faultDurationMs: [100, 1200],
    faults: { 'partition-majority': 4, heal: 1 },
  },
  'leader-isolation': {
    network: LOSSY,
    faultIntervalMs: [150, 600],
    faultDurationMs: [100, 1200],
    faults: { 'isolate-leader': 3, 'one-way-leader': 3, 'transfer-leader': 1, 'transfer-then-deafen-leader': 2, 'pause-leader': 2, heal: 1 },
  },
  'flapping-links': {
    network: LOSSY,
    faultIntervalMs: [100, 400],
    faultDurationMs: [200, 1500],
    faults: { 'flap-link': 1 },
  },
  'process-pauses': {
    network: LOSSY,
    faultIntervalMs: [100, 400],
    faultDurationMs: [150, 600],
    faults: { 'pause-leader': 4, 'isolate-leader': 1, heal: 1 },
  },
  'crash-loop': {
    network: LOSSY,
    faultIntervalMs: [80, 400],
    faultDurationMs: [20, 800],
    faults: { crash: 2, 'crash-leader': 2, 'crash-mid-ready': 3 },
  },
  'membership-churn': {
    network: LOSSY,
    faultIntervalMs: [60, 300],
    faultDurationMs: [100, 800],
    faults: { 'add-learner': 3, 'promote-learner': 3, 'remove-voter': 2, 'joint-change': 2, 'transfer-leader': 2, crash: 1 },
  },
  mixed: {
    network: LOSSY,
    faultIntervalMs: [80, 400],
    faultDurationMs: [50, 1000],
    faults: {
      'partition-majority': 2,
      'isolate-leader': 1,
      'one-way-leader': 1,
      'flap-link': 1,
      heal: 1,
      crash: 1,
      'crash-leader': 1,
      'crash-mid-ready': 2,
      'pause-leader': 1,
      'add-learner': 1,
      'promote-learner': 1,
      'remove-voter': 1,
      'joint-change': 1,
      'transfer-leader': 1,
    },
  },
} satisfies Record<string, MixSpec>;

export type MixName = keyof typeof MIXES;
export const MIX_NAMES = Object.keys(MIXES) as MixName[];

export function isMixName(name: string): name is MixName {
  return Object.hasOwn(MIXES, name);
}
