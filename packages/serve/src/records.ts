import type { Defect, Verdict } from './inspector.js';

/** What the caller supplies for one inspection; the log adds `id` order (seq) on insert. */
export interface NewInspection {
  id: string;
  /** Epoch milliseconds when the request arrived. */
  ts: number;
  station: string;
  partId: string | null;
  /** `http` (kestrel serve) or `watch` (kestrel watch). */
  source: 'http' | 'watch';
  imageSha256: string;
  imageBytes: number;
  model: { name: string; version: string };
  score: number;
  threshold: number;
  verdict: Verdict;
  defects: Defect[];
  timings: { queueMs: number; inferMs: number; totalMs: number };
  archivePath: string | null;
  /** The client's Idempotency-Key, if it sent one (unique across the log). */
  requestKey?: string | null;
}

/** One logged inspection, as the API returns it. */
export interface InspectionRecord extends Omit<NewInspection, 'ts'> {
  /** ISO 8601 time the request arrived. */
  ts: string;
}

/** Filters of {@link InspectionLog.list}. */
export interface ListQuery {
  station?: string | undefined;
  /** Restrict to these stations (a station-scoped API key); undefined = all. */
  stations?: readonly string[] | undefined;
  verdict?: Verdict | undefined;
  /** Epoch ms, inclusive. */
  since?: number | undefined;
  /** Epoch ms, exclusive. */
  until?: number | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Raw figures over a time window, for /v1/stats. */
export interface WindowFigures {
  total: number;
  ng: number;
  /** total_ms of each inspection in the window, ascending (at most `maxLatencies`, the newest). */
  latenciesMs: number[];
  firstTs: number | null;
  lastTs: number | null;
}
