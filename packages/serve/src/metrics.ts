/** Label values of one series, e.g. `{ route: '/v1/inspect', status: '200' }`. */
export type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}="${labels[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
}

/** Seconds buckets for request latency: 5 ms .. 30 s. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The few metrics a line needs, rendered in the Prometheus text format (version 0.0.4). Hand-written to
 * keep the server's dependencies small; series are created on first use.
 */
export class Metrics {
  private readonly counters = new Map<string, { help: string; series: Map<string, number> }>();
  private readonly histos = new Map<string, { help: string; series: Map<string, { counts: number[]; sum: number; n: number }> }>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    let c = this.counters.get(name);
    if (!c) { c = { help, series: new Map() }; this.counters.set(name, c); }
    const k = key(labels);
    c.series.set(k, (c.series.get(k) ?? 0) + by);
  }

  observe(name: string, help: string, seconds: number, labels: Labels = {}): void {
    let h = this.histos.get(name);
    if (!h) { h = { help, series: new Map() }; this.histos.set(name, h); }
    const k = key(labels);
    let s = h.series.get(k);
    if (!s) { s = { counts: BUCKETS.map(() => 0), sum: 0, n: 0 }; h.series.set(k, s); }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) s.counts[i]!++;
    s.sum += seconds;
    s.n++;
  }

  /** A gauge read when scraped. */
  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  /** Prometheus text exposition. */
  render(): string {
    const out: string[] = [];
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [k, v] of c.series) out.push(`${name}${k ? `{${k}}` : ''} ${v}`);
    }
    for (const [name, h] of this.histos) {
      out.push(`# HELP ${name} ${h.help}`, `# TYPE ${name} histogram`);
      for (const [k, s] of h.series) {
        const pre = k ? `${k},` : '';
        BUCKETS.forEach((b, i) => out.push(`${name}_bucket{${pre}le="${b}"} ${s.counts[i]}`));
        out.push(`${name}_bucket{${pre}le="+Inf"} ${s.n}`);
        out.push(`${name}_sum${k ? `{${k}}` : ''} ${s.sum}`, `${name}_count${k ? `{${k}}` : ''} ${s.n}`);
      }
    }
    for (const [name, g] of this.gauges) out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    return out.join('\n') + '\n';
  }
}
