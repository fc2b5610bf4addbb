import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/**
 * Prometheus metrics of one process, read at scrape time from the plain numbers its components
 * report (`metrics()` of a storage node or of a router's cluster client), plus Node.js's own.
 */

/**
 * What a component's `metrics()` returns: an object of numbers, possibly grouped in nested objects
 * (`object`, because the components declare interfaces, which have no index signature; other values
 * are ignored).
 */
export type NumericTree = object;

export interface MetricSource {
  /** Prefix of the metric names, e.g. `shoal_node`. */
  prefix: string;
  read(): NumericTree;
  /** Labels on every metric of this source, e.g. `{ node_id: '1' }`. */
  labels?: Record<string, string>;
  /**
   * Top-level names whose numbers count events since the process started (Prometheus counters,
   * exposed with the `_total` suffix); names already ending in `Total` are counters too. Every
   * other number is a gauge.
   */
  counters?: readonly string[];
}

/** `appliedIndex` → `applied_index`. */
function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase();
}

/** Every number of the tree under its flattened snake_case path. */
export function flatten(tree: NumericTree, path = ''): Map<string, number> {
  const numbers = new Map<string, number>();
  for (const [key, value] of Object.entries(tree)) {
    const name = path === '' ? snakeCase(key) : `${path}_${snakeCase(key)}`;
    if (typeof value === 'number') {
      if (Number.isFinite(value)) numbers.set(name, value);
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [inner, number] of flatten(value, name)) numbers.set(inner, number);
    }
  }
  return numbers;
}


export interface ProcessMetrics {
  readonly registry: Registry;
  /** The text exposition of every metric, the sources read now. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export function createProcessMetrics(sources: readonly MetricSource[]): ProcessMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const gauges = new Map<string, Gauge>();
  const counters = new Map<string, Counter>();

  const record = (source: MetricSource): void => {
    const labels = source.labels ?? {};
    const labelNames = Object.keys(labels);
    const counted = new Set((source.counters ?? []).map(snakeCase));
    for (const [path, value] of flatten(source.read())) {
      if (path.endsWith('_total') || counted.has(path)) {
        const name = `${source.prefix}_${path.replace(/(_total)?$/, '_total')}`;
        let counter = counters.get(name);
        if (counter === undefined) {
          counter = new Counter({ name, help: `${path} (read from the component at scrape time)`, labelNames, registers: [registry] });
          counters.set(name, counter);
        }
        // The component keeps the running total; the counter only mirrors it.
        counter.reset();
        counter.inc(labels, Math.max(0, value));
      } else {
        const name = `${source.prefix}_${path}`;
        let gauge = gauges.get(name);
        if (gauge === undefined) {
          gauge = new Gauge({ name, help: `${path} (read from the component at scrape time)`, labelNames, registers: [registry] });
          gauges.set(name, gauge);
        }
        gauge.set(labels, value);
      }
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    async scrape() {
      for (const source of sources) record(source);
      return registry.metrics();
    },
  };
}
