import type { NodeId } from '@shoal/raft';
import type { Prng } from './prng.ts';
import type { Scheduler } from './scheduler.ts';

/** How unreliable the wire is. Reordering comes from the spread of delays. */
export interface NetworkProfile {
  minDelayMs: number;
  maxDelayMs: number;
  /** Chance that a message is lost. */
  dropRate: number;
  /** Chance that a message is delivered twice (the copy with its own delay). */
  duplicateRate: number;
  /** Chance that a message takes a long detour (up to `slowDelayMs`), overtaken by later ones. */
  slowRate: number;
  slowDelayMs: number;
}

export type DeliveryOutcome = 'delivered' | 'dropped';

/**
 * A point-to-point network between node ids. Links are directed: blocking a→b alone is a one-way
 * partition. A message is lost if its link is blocked when it is sent or when it would arrive.
 */
export class SimNetwork {
  profile: NetworkProfile;
  private readonly blocked = new Set<string>();
  private readonly prng: Prng;
  private readonly scheduler: Scheduler;
  sent = 0;
  dropped = 0;
  duplicated = 0;

  constructor(prng: Prng, scheduler: Scheduler, profile: NetworkProfile) {
    this.prng = prng;
    this.scheduler = scheduler;
    this.profile = profile;
  }

  isLinkUp(from: NodeId, to: NodeId): boolean {
    return !this.blocked.has(linkKey(from, to));
  }

  blockLink(from: NodeId, to: NodeId): void {
    this.blocked.add(linkKey(from, to));
  }

  unblockLink(from: NodeId, to: NodeId): void {
    this.blocked.delete(linkKey(from, to));
  }

  /** Cuts every link between the two sides, both ways. */
  partition(sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.blockLink(a, b);
        this.blockLink(b, a);
      }
    }
  }

  healAll(): void {
    this.blocked.clear();
  }

  blockedLinks(): string[] {
    return [...this.blocked].sort();
  }

  /**
   * Sends one message; `deliver` runs at arrival (possibly twice), `onOutcome` once per copy with
   * whether it arrived, which is what a transport reporting unreachable peers would learn.
   */
  send(from: NodeId, to: NodeId, deliver: () => void, onOutcome?: (outcome: DeliveryOutcome) => void): void {
    this.sent++;
    const copies = this.prng.chance(this.profile.duplicateRate) ? 2 : 1;
    if (copies === 2) this.duplicated++;
    for (let copy = 0; copy < copies; copy++) {
      if (!this.isLinkUp(from, to) || this.prng.chance(this.profile.dropRate)) {
        this.dropped++;
        // A transport learns of a failure later, never inside the send call.
        if (onOutcome) this.scheduler.after(0, () => onOutcome('dropped'));
        continue;
      }
      this.scheduler.after(this.delay(), () => {
        if (!this.isLinkUp(from, to)) {
          this.dropped++;
          onOutcome?.('dropped');
          return;
        }
        deliver();
        onOutcome?.('delivered');
      });
    }
  }

  private delay(): number {
    const p = this.profile;
    if (p.slowRate > 0 && this.prng.chance(p.slowRate)) return this.prng.int(p.maxDelayMs, Math.max(p.maxDelayMs + 1, p.slowDelayMs));
    return this.prng.int(p.minDelayMs, p.maxDelayMs + 1);
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}
