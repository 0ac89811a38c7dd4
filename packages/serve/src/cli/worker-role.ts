import type { ServeConfig } from '../config.js';
import type { Inspector } from '../inspector.js';
import { startInspectionWorker } from '../queues/bull-worker.js';
import { redactRedisUrl } from '../queues/redis.js';
import { openStore } from '../stores/open-store.js';
import { warmUpImage } from '../warm-up.js';
import { runUntilSignal, type CliContext } from './context.js';

/**
 * `kestrel serve --role worker`: no HTTP; take jobs from the shared queue, inspect, commit each row to
 * the store, until SIGTERM/SIGINT (the jobs in hand finish first). Prints one JSON line
 * `{"event":"worker-ready",...}` on stdout when it takes jobs.
 */
export async function runWorkerRole(ctx: CliContext, config: ServeConfig, inspector: Inspector): Promise<number> {
  // Warm the model before taking jobs, so the first jobs are not the slow ones.
  for (let i = 0; i < 3; i++) await inspector.inspect(await warmUpImage(i));
  const store = await openStore(config.db);
  let worker;
  try {
    worker = await startInspectionWorker({ url: config.queue.url!, inspector, store, concurrency: config.queue.concurrency, archiveNgDir: config.archiveNgDir });
  } catch (e) {
    await store.close();
    throw e;
  }
  ctx.out.write(JSON.stringify({ event: 'worker-ready', pid: process.pid, db: store.file, model: inspector.model, queue: redactRedisUrl(config.queue.url!), concurrency: config.queue.concurrency }) + '\n');
  if (!ctx.json) ctx.err.write(`kestrel serve: worker taking jobs from ${redactRedisUrl(config.queue.url!)} (store ${store.file})\n`);
  const w = worker;
  return runUntilSignal(ctx, 'finishing the jobs in hand', async () => {
    await w.close();
    await inspector.close?.();
    await store.close();
    return `worker stopped after ${w.done} job(s)`;
  });
}
