/**
 * The two seams along which `kestrel serve` runs on several machines. Single machine: `InspectionLog`
 * (SQLite) and the in-process `WorkQueue`. Several machines: `PostgresStore` and `BullInspectionQueue`
 * (BullMQ on Redis) with `startInspectionWorker` in the worker processes (docs/qc-serve.md, "Several
 * machines").
 */
import type { InspectionRecord, ListQuery, NewInspection, WindowFigures } from './records.js';

/** Where inspections are logged. `InspectionLog` (SQLite) implements it synchronously, `PostgresStore` asynchronously. */
export interface InspectionStore {
  /**
   * Commit one inspection durably; resolves only once it is committed. An id or request key already
   * logged writes nothing and resolves to the stored row.
   */
  insert(n: NewInspection): InspectionRecord | Promise<InspectionRecord>;
  get(id: string): InspectionRecord | undefined | Promise<InspectionRecord | undefined>;
  getByRequestKey(key: string): InspectionRecord | undefined | Promise<InspectionRecord | undefined>;
  list(q: ListQuery): { items: InspectionRecord[]; next: string | null } | Promise<{ items: InspectionRecord[]; next: string | null }>;
  window(q: Omit<ListQuery, 'limit' | 'cursor'>): WindowFigures | Promise<WindowFigures>;
  count(): number | Promise<number>;
  close(): void | Promise<void>;
}

/** One unit of work on the shared queue, made by a frontend; the image bytes travel in the job. */
export interface InspectionJob {
  /** The inspection id the answer and the log row will carry (also the queue's job id). */
  id: string;
  /** Epoch ms the request arrived (the row's `ts`). */
  ts: number;
  station: string;
  partId: string | null;
  /** The client's Idempotency-Key, if any: the store logs it once. */
  requestKey: string | null;
  imageSha256: string;
  /** The image bytes, base64. */
  image: string;
  /** Image format as probed by the frontend (for the NG archive's file extension). */
  format: string;
  /** Epoch ms by which a worker must start the job; a job not started by then is dropped (503). */
  startBy: number;
}

/**
 * A job queue shared by frontends and workers: the frontend adds a job and waits for the record its
 * worker committed to the store.
 */
export interface InspectionJobQueue {
  /** Enqueue; rejects with `QueueError('full')` when the queue is over its bound (the frontend answers 429). */
  add(job: InspectionJob): Promise<void>;
  /**
   * Resolves with the record the worker committed, or rejects: a `KestrelError` with the worker's code,
   * or `QueueError('timeout')` when no worker started it by `startBy` (epoch ms) or a started job did not
   * finish within `runMs` more (time enough for a killed worker's job to be run again).
   */
  result(id: string, wait: { startBy: number; runMs: number }): Promise<InspectionRecord>;
  /** Jobs waiting, for 429 decisions, /healthz and metrics. */
  depth(): Promise<number>;
  close(): Promise<void>;
}
