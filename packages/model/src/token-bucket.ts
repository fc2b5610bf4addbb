/**
 * A token bucket of capacity units: refilled at `ratePerSecond` up to `burst` units. A request is
 * admitted while the bucket holds any tokens, takes the least it can cost at once, and is charged the
 * rest of what it consumed once served (the units of a read or write are known only then, as on
 * DynamoDB), so the balance may go negative: the debt is repaid by the refill before the next request
 * gets in. The debt is bounded by one burst.
 */
export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  #tokens: number;
  #at: number | undefined;

  constructor(ratePerSecond: number, burst: number) {
    if (!(ratePerSecond > 0) || !(burst > 0)) throw new RangeError('a token bucket needs a positive rate and burst');
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.#tokens = burst;
  }

  /** Tokens now (negative while in debt). */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Whether a request may go ahead now. */
  admits(now: number): boolean {
    return this.tokens(now) > 0;
  }

  /**
   * Admits a request if the bucket holds tokens, taking `reserve` units at once (the least it can
   * cost), so that requests arriving together cannot all pass before the first is charged.
   */
  take(reserve: number, now: number): boolean {
    if (!this.admits(now)) return false;
    this.charge(reserve, now);
    return true;
  }

  charge(units: number, now: number): void {
    this.#refill(now);
    this.#tokens = Math.max(-this.burst, this.#tokens - units);
  }

  #refill(now: number): void {
    if (this.#at !== undefined && now > this.#at) this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.ratePerSecond) / 1000);
    if (this.#at === undefined || now > this.#at) this.#at = now;
  }
}
