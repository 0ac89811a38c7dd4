import { KestrelError } from '@kestrel/core';
import type { InspectionRecord } from '../records.js';
import type { Defect, Verdict } from '../inspector.js';

/** A row of `inspections` as both stores return it (PostgreSQL BIGINTs parsed to numbers). */
export interface Row {
  seq: number; id: string; ts: number; station: string; part_id: string | null; source: string;
  image_sha256: string; image_bytes: number; model_name: string; model_version: string; score: number;
  threshold: number; verdict: Verdict; defects: string; queue_ms: number; infer_ms: number; total_ms: number;
  archive_path: string | null; request_key: string | null;
}

/** The API shape of a row. */
export function toRecord(r: Row): InspectionRecord {
  return {
    id: r.id,
    ts: new Date(r.ts).toISOString(),
    station: r.station,
    partId: r.part_id,
    source: r.source as 'http' | 'watch',
    imageSha256: r.image_sha256,
    imageBytes: r.image_bytes,
    model: { name: r.model_name, version: r.model_version },
    score: r.score,
    threshold: r.threshold,
    verdict: r.verdict,
    defects: JSON.parse(r.defects) as Defect[],
    timings: { queueMs: r.queue_ms, inferMs: r.infer_ms, totalMs: r.total_ms },
    archivePath: r.archive_path,
    requestKey: r.request_key,
  };
}

/** An opaque page cursor for the row order `seq`. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

/** The `seq` of a cursor; a tampered one is E_OPTIONS. */
export function decodeCursor(c: string): number {
  const m = /^s(\d{1,15})$/.exec(Buffer.from(c, 'base64url').toString('utf8'));
  if (!m) throw new KestrelError('E_OPTIONS', 'invalid cursor: pass back the `next` value of a previous page unchanged');
  return Number(m[1]);
}

