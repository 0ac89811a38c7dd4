// Worker used by worker.test.ts: each method exercises one part of the protocol.
import { threadId } from 'node:worker_threads';
import { serveWorker, KestrelError } from '@kestrel/core';

const spin = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };

serveWorker(async (init) => {
  if (init?.failInit) throw new KestrelError('E_MODEL_NOT_FOUND', 'no model at /nowhere', { details: { path: '/nowhere' } });
  return {
    info: { threadId, init },
    handlers: {
      echo: (args) => args,
      fail: () => { throw new KestrelError('E_CHECKPOINT_FORMAT', 'bad tensor x', { details: { tensor: 'x' } }); },
      failPlain: () => { throw new TypeError('boom'); },
      exit: () => { process.exit(3); },
      oom: () => { const keep = []; for (;;) keep.push(new Array(1e6).fill(Math.random())); },
      sum: (bytes) => { const u = new Uint8Array(bytes); let s = 0; for (const v of u) s += v; return { length: u.length, sum: s }; },
      // emits n events, busy for `ms` before each (a model step holding the core), stops on abort
      stream: async ({ n, ms, yieldEach = true }, ctx) => {
        for (let i = 0; i < n; i++) {
          spin(ms);
          if (ctx.signal.aborted) throw new KestrelError('E_ABORTED', `aborted after ${i} events`);
          ctx.emit(i);
          if (yieldEach) await new Promise((r) => setImmediate(r)); // as generation does between tokens
        }
        return { done: n };
      },
      spin: ({ ms }) => { spin(ms); return threadId; },
      bytesOut: ({ n }, ctx) => { const b = new Uint8Array(n).fill(7); ctx.transferResult([b.buffer]); return b; },
    },
  };
});
