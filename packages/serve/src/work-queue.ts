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
 * under any load. A job whose expected wait (jobs ahead × average run time) is over half its
 * deadline is refused the same way. A waiting job whose deadline passes is dropped before it runs (`'timeout'`); a running
 * job is never abandoned half-way, because its result is about to be logged.
 */
export class WorkQueue {
  private readonly waiting: Job<unknown>[] = [];
  private running = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Moving average of job run time, ms (undefined until the first job finishes). */
  private avgRunMs: number | undefined;

  constructor(readonly concurrency: number, readonly maxQueued: number) {}

  /** Jobs waiting to start. */
  get depth(): number { return this.waiting.length; }
  /** Jobs running now. */
  get active(): number { return this.running; }

  /** Expected wait of a job pushed now: the jobs ahead of it times the average run time, per slot. */
  expectedWaitMs(): number {
    if (this.avgRunMs === undefined || this.running < this.concurrency) return 0;
    return ((this.waiting.length + 1) * this.avgRunMs) / this.concurrency;
  }

  /**
   * Run `fn` when a slot is free. Resolves with its value and the time it waited.
   * @param timeoutMs drop the job if it has not started by then
   */
  push<T>(fn: () => Promise<T>, timeoutMs?: number): Promise<{ value: T; queueMs: number }> {
    if (this.closed) return Promise.reject(new QueueError('closed', 'the server is shutting down'));
    if (this.running >= this.concurrency && this.waiting.length >= this.maxQueued) {
      return Promise.reject(new QueueError('full', `work queue full (${this.maxQueued} waiting); retry later`));
    }
    // Refuse now what would likely not start before its deadline: a 429 the client can act on beats a
    // 503 after it has waited the whole timeout. Half the deadline leaves room for run times that vary
    // (a shared CPU) without admitted jobs timing out.
    if (timeoutMs !== undefined && timeoutMs > 0) {
      const wait = this.expectedWaitMs();
      if (wait > timeoutMs / 2) return Promise.reject(new QueueError('full', `busy: expected wait ${Math.round(wait)} ms is over half the ${Math.round(timeoutMs)} ms deadline; retry later`));
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
      const startedAt = performance.now();
      const queueMs = startedAt - job.enqueuedAt;
      let p: Promise<unknown>;
      try { p = job.run(); } catch (e) { p = Promise.reject(e); }
      // Book-keeping first, then settle: a caller that awaits the job sees the queue already updated.
      const settle = (fn: () => void): void => {
        const ran = performance.now() - startedAt;
        this.avgRunMs = this.avgRunMs === undefined ? ran : 0.8 * this.avgRunMs + 0.2 * ran;
        this.running--;
        fn();
        this.pump();
        if (this.running === 0 && this.waiting.length === 0) {
          const w = this.idleWaiters;
          this.idleWaiters = [];
          for (const f of w) f();
        }
      };
      p.then((value) => settle(() => job.resolve({ value, queueMs })), (e: unknown) => settle(() => job.reject(e)));
    }
  }

  /** Refuse new jobs; resolves when every accepted job has finished. */
  drain(): Promise<void> {
    this.closed = true;
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }
}
