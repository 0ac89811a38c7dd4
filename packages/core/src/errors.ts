/**
 * Every failure a user can cause is a `KestrelError` with a stable `code`, so callers can branch on
 * `err.code` instead of parsing messages. Messages say what is wrong and what to do.
 */
export type KestrelErrorCode =
  | 'E_CHECKPOINT_FORMAT'
  | 'E_IMAGE_DECODE'
  | 'E_IMAGE_TOO_LARGE'
  | 'E_IMAGE_TOKENS'
  | 'E_OPTIONS'
  | 'E_MODEL_NOT_FOUND'
  | 'E_COCO_FORMAT'
  | 'E_BACKEND_UNAVAILABLE'
  | 'E_DATA_FORMAT'
  | 'E_IO'
  | 'E_ABORTED'
  | 'E_UNSUPPORTED'
  | 'E_INTERNAL'
  /** a model worker thread died (crash, out of memory, native fault, process.exit) while it held the request */
  | 'E_WORKER_CRASHED';

export class KestrelError extends Error {
  /** Stable machine-readable code, e.g. `E_CHECKPOINT_FORMAT`. */
  readonly code: KestrelErrorCode;
  /** Optional structured details (file path, tensor name, JSON path...). */
  readonly details?: Record<string, unknown>;

  constructor(code: KestrelErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'KestrelError';
    this.code = code;
    if (options?.details) this.details = options.details;
  }

  toJSON(): { name: string; code: KestrelErrorCode; message: string; details?: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** True when `e` is a KestrelError (optionally with the given code). */
export function isKestrelError(e: unknown, code?: KestrelErrorCode): e is KestrelError {
  return e instanceof KestrelError && (code === undefined || e.code === code);
}
