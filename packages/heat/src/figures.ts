/** What the workload measured in one interval, as the terminal and the report show it. */
export interface IntervalFigures {
  /** ms since the start, at the end of the interval. */
  at: number;
  okPerSecond: number;
  throttledPerSecond: number;
  errorsPerSecond: number;
  /** Throttled over attempted, 0..1. */
  throttleRate: number;
  p50Ms: number;
  p99Ms: number;
}

export interface RunSummary {
  durationMs: number;
  ok: number;
  throttled: number;
  errors: number;
  okPerSecond: number;
  throttleRate: number;
  p50Ms: number;
  p99Ms: number;
  splits: number;
  moves: number;
}
