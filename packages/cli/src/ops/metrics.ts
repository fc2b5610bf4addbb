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
  /**
   * Series with labels of their own (per partition, per reason), called right after `read` in the
   * same scrape: a source reads its component once and derives both from that reading. The
   * source's `labels` are added to every sample.
   */
  series?(): readonly Series[];
}

export type Labels = Record<string, string>;

/** Gauges and counters (a running total the component keeps) with labels, or a histogram of durations. */
export type Series =
  | { type: 'gauge' | 'counter'; name: string; help: string; labelNames: readonly string[]; samples: readonly { labels: Labels; value: number }[] }
  | {
      type: 'histogram';
      name: string;
      help: string;
      /** Upper bounds of the buckets, ascending. */
      buckets: readonly number[];
      /** `counts[i]`: observations in bucket i alone (not cumulative); one more count for those above the last bound. */
      samples: readonly { labels: Labels; counts: readonly number[]; sum: number }[];
    };

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

/** `a"b` → `a\"b`: a label value in the text exposition format. */
function labelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${labelValue(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/**
 * A histogram whose buckets the component counts itself, in the text exposition format (prom-client
 * histograms only take observations one at a time).
 */
export function histogramText(series: Extract<Series, { type: 'histogram' }>, base: Labels = {}): string {
  const lines = [`# HELP ${series.name} ${series.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${series.name} histogram`];
  for (const sample of series.samples) {
    const labels = { ...base, ...sample.labels };
    let cumulative = 0;
    series.buckets.forEach((bound, index) => {
      cumulative += sample.counts[index] ?? 0;
      lines.push(`${series.name}_bucket${labelText({ ...labels, le: String(bound) })} ${cumulative}`);
    });
    cumulative += sample.counts[series.buckets.length] ?? 0;
    lines.push(`${series.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${cumulative}`);
    lines.push(`${series.name}_sum${labelText(labels)} ${sample.sum}`);
    lines.push(`${series.name}_count${labelText(labels)} ${cumulative}`);
  }
  return `${lines.join('\n')}\n`;
}

export function createProcessMetrics(sources: readonly MetricSource[]): ProcessMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const gauges = new Map<string, Gauge>();
  const counters = new Map<string, Counter>();
  /** Labelled gauges and counters, by name: every sample is set anew at each scrape. */
  const labelled = new Map<string, Gauge | Counter>();

  /** Reads a source into the registry; returns the text of its histograms. */
  const record = (source: MetricSource): string[] => {
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
    return (source.series?.() ?? []).flatMap((series) => recordSeries(series, labels));
  };

  /** Sets a labelled gauge or counter (a partition gone since the last scrape disappears); a histogram's text. */
  const recordSeries = (series: Series, base: Labels): string[] => {
    if (series.type === 'histogram') return [histogramText(series, base)];
    let metric = labelled.get(series.name);
    if (metric === undefined) {
      const options = { name: series.name, help: series.help, labelNames: [...Object.keys(base), ...series.labelNames], registers: [registry] };
      metric = series.type === 'counter' ? new Counter(options) : new Gauge(options);
      labelled.set(series.name, metric);
    }
    metric.reset();
    for (const sample of series.samples) {
      const labels = { ...base, ...sample.labels };
      if (metric instanceof Counter) metric.inc(labels, Math.max(0, sample.value));
      else metric.set(labels, sample.value);
    }
    return [];
  };

  return {
    registry,
    contentType: registry.contentType,
    async scrape() {
      const histograms = sources.flatMap(record);
      return `${await registry.metrics()}${histograms.map((text) => `\n${text}`).join('')}`;
    },
  };
}
