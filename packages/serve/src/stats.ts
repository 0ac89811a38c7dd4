import { clopperPearson } from '@kestrel/eval';
import type { WindowFigures } from './inspection-log.js';

/** What GET /v1/stats answers. */
export interface StatsReport {
  window: { since: string; until: string; seconds: number };
  counts: { total: number; ok: number; ng: number };
  /** NG rate with an exact (Clopper-Pearson) two-sided 95 % interval; null without inspections. */
  ngRate: { estimate: number; lower: number; upper: number; confidence: number } | null;
  /** Inspections per second and per minute over the part of the window the log covers. */
  throughput: { perSecond: number; perMinute: number; spanSeconds: number };
  /** Request-to-answer latency of the logged inspections, milliseconds (nearest-rank percentiles). */
  latencyMs: { p50: number; p90: number; p95: number; p99: number; max: number; n: number } | null;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Turn raw window figures into the stats report. */
export function statsReport(f: WindowFigures, since: number, until: number): StatsReport {
  const ci = f.total > 0 ? clopperPearson(f.ng, f.total, 0.95) : null;
  // Throughput over the covered span: from the window start (or the first row, if later) to its end.
  const start = f.firstTs !== null ? Math.max(since, f.firstTs) : since;
  const spanSeconds = Math.max(1, (until - start) / 1000);
  const l = f.latenciesMs;
  const round = (x: number): number => Math.round(x * 100) / 100;
  return {
    window: { since: new Date(since).toISOString(), until: new Date(until).toISOString(), seconds: (until - since) / 1000 },
    counts: { total: f.total, ok: f.total - f.ng, ng: f.ng },
    ngRate: ci && { estimate: ci.estimate, lower: ci.lower, upper: ci.upper, confidence: ci.confidence },
    throughput: { perSecond: f.total / spanSeconds, perMinute: (60 * f.total) / spanSeconds, spanSeconds },
    latencyMs: l.length ? {
      p50: round(percentile(l, 50)), p90: round(percentile(l, 90)), p95: round(percentile(l, 95)), p99: round(percentile(l, 99)),
      max: round(l[l.length - 1]!), n: l.length,
    } : null,
  };
}
