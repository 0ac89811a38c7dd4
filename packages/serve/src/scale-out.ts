/**
 * Interfaces for running inspection on several machines. Only the single-machine implementations exist
 * today (InspectionLog on SQLite, WorkQueue in process); docs/qc-serve.md describes the multi-machine
 * design these interfaces are cut for: a BullMQ queue on Redis, workers that run the model, and a
 * shared PostgreSQL inspection log.
 */
import type { InspectionRecord, ListQuery, NewInspection, WindowFigures } from './inspection-log.js';
import type { InspectionResult, ModelIdentity } from './inspector.js';

/** Where inspections are logged. `InspectionLog` (SQLite) implements it synchronously. */
export interface InspectionStore {
  /** Commit one inspection durably; resolves only once it is committed. */
  insert(n: NewInspection): InspectionRecord | Promise<InspectionRecord>;
  get(id: string): InspectionRecord | undefined | Promise<InspectionRecord | undefined>;
  getByRequestKey(key: string): InspectionRecord | undefined | Promise<InspectionRecord | undefined>;
  list(q: ListQuery): { items: InspectionRecord[]; next: string | null } | Promise<{ items: InspectionRecord[]; next: string | null }>;
  window(q: Omit<ListQuery, 'limit' | 'cursor'>): WindowFigures | Promise<WindowFigures>;
  count(): number | Promise<number>;
  close(): void | Promise<void>;
}

/** One unit of work on the shared queue: the image travels by content hash, its bytes in a blob store. */
export interface InspectionJob {
  /** The inspection id the answer and the log row will carry (made by the front end). */
  id: string;
  station: string;
  partId: string | null;
  imageSha256: string;
  /** Key of the image bytes in the shared blob store (never a client-chosen path). */
  blobKey: string;
  /** Epoch ms the request arrived (for the per-request deadline). */
  receivedAt: number;
  deadlineMs: number;
}

/** What a worker reports back for a job. */
export interface InspectionJobResult extends InspectionResult {
  model: ModelIdentity;
  inferMs: number;
  worker: string;
}

/**
 * A job queue shared by front ends and workers. In process, `WorkQueue` plays both roles. Across
 * machines: BullMQ `Queue.add(name, job, { jobId: job.id })` (the id makes a retried add idempotent) and
 * a `Worker` per machine; the front end waits for the job's completion event.
 */
export interface InspectionJobQueue {
  /** Enqueue; rejects when the queue is over its bound (the front end answers 429). */
  add(job: InspectionJob): Promise<void>;
  /** Resolves with the worker's result, or rejects at the job's deadline. */
  result(id: string): Promise<InspectionJobResult>;
  /** Jobs waiting, for 429 decisions and metrics. */
  depth(): Promise<number>;
  close(): Promise<void>;
}
