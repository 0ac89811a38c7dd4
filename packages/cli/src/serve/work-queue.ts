/** Why the queue refused or dropped a job. */
export class QueueError extends Error {
  constructor(readonly reason: 'full' | 'timeout' | 'closed', message: string) {
    super(message);
    this.name = 'QueueError';
  }
}

interface Job<T> {
  run: () => Promise<T>;
  resolve: (v: { value: T; queueMs: number }) => void;
  reject: (e: unknown) => void;
  enqueuedAt: number;
  timer: NodeJS.Timeout | undefined;
  started: boolean;
}

/**
 * A bounded work queue: at most `concurrency` jobs run at once and at most `maxQueued` wait. A job that
 * does not fit is refused at once (`QueueError('full')`, the server's 429), so memory stays bounded
 * under any load. A waiting job whose deadline passes is dropped before it runs (`'timeout'`); a running
 * job is never abandoned half-way, because its result is about to be logged.
 */
export class WorkQueue {
  private readonly waiting: Job<unknown>[] = [];
  private running = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly concurrency: number, readonly maxQueued: number) {}

  /** Jobs waiting to start. */
  get depth(): number { return this.waiting.length; }
  /** Jobs running now. */
  get active(): number { return this.running; }

  /**
   * Run `fn` when a slot is free. Resolves with its value and the time it waited.
   * @param timeoutMs drop the job if it has not started by then
   */
  push<T>(fn: () => Promise<T>, timeoutMs?: number): Promise<{ value: T; queueMs: number }> {
    if (this.closed) return Promise.reject(new QueueError('closed', 'the server is shutting down'));
    if (this.running >= this.concurrency && this.waiting.length >= this.maxQueued) {
      return Promise.reject(new QueueError('full', `work queue full (${this.maxQueued} waiting); retry later`));
    }
    return new Promise((resolve, reject) => {
      const job: Job<T> = { run: fn, resolve, reject, enqueuedAt: performance.now(), timer: undefined, started: false };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        job.timer = setTimeout(() => {
          if (job.started) return;
          const i = this.waiting.indexOf(job as Job<unknown>);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new QueueError('timeout', `not started within ${timeoutMs} ms`));
        }, timeoutMs);
        job.timer.unref();
      }
      this.waiting.push(job as Job<unknown>);
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.concurrency && this.waiting.length) {
      const job = this.waiting.shift()!;
      job.started = true;
      if (job.timer) clearTimeout(job.timer);
      this.running++;
      const queueMs = performance.now() - job.enqueuedAt;
      let p: Promise<unknown>;
      try { p = job.run(); } catch (e) { p = Promise.reject(e); }
      p.then((value) => job.resolve({ value, queueMs }), job.reject).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.waiting.length === 0) {
          const w = this.idleWaiters;
          this.idleWaiters = [];
          for (const f of w) f();
        }
      });
    }
  }

  /** Refuse new jobs; resolves when every accepted job has finished. */
  drain(): Promise<void> {
    this.closed = true;
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }
}
