import type { CommandContext, CommandSpec } from '../command.js';

const HELP = `Usage: kestrel serve --model NAME_OR_DIR --api-key KEY [options]

Serve inspections over HTTP (loopback by default) and log each one durably in SQLite or PostgreSQL.
Several machines: frontends and workers share a BullMQ queue on Redis (docs/qc-serve.md, "Several machines").

Options:
  --config FILE        JSON config (see docs/qc-serve.md); flags override it
  --port N             port (default 8080; 0 = any free port)
  --host H             address (default 127.0.0.1)
  --db FILE            inspection log (default kestrel-inspections.db)
  --store FILE|URL     the same, or postgres://user@host:port/db for a log shared by several machines
  --model NAME_OR_DIR  defects model: defects-elpv, anomaly-magnetic-tile, or a model folder
  --pipeline P         defects (default) or detect (a detector plus --rules)
  --rules FILE|JSON    detect rules, e.g. {"ngLabels":["scratch"],"minScore":0.5,"minCount":1}
  --vlm DIR            vision-language model folder for POST /v1/chat/completions
  --api-key KEY        an accepted key (repeatable); KEY:station1,station2 limits it to those stations.
                       Keys are hashed at start; config files hold only sha256 hashes.
  --archive-ng DIR     also save NG images to DIR/<date>/<id>.<ext>
  --queue N            inspections waiting at most (default 64; more get 429)
  --queue redis://H:P  share a BullMQ queue on Redis with worker processes (the bound stays 64 or --config)
  --role R             with a shared queue: frontend (HTTP, enqueues), worker (runs the model, commits
                       to --store; no HTTP) or all (default: both in one process)
  --concurrency N      inspections at once (default: --workers)
  --workers N          model worker threads, each its own copy of the model (default 1); a worker
                       that dies fails only its request (503 E_WORKER_CRASHED) and is restarted
  --body-limit BYTES   largest upload (default 20971520; more get 413)
  --timeout MS         per-request limit to receive the body and start the work (default 30000)
  --hash-key KEY       print the sha256 of KEY for a config file and exit

Prints one JSON line {"event":"listening","url":...} on stdout when ready. SIGTERM/SIGINT drain
in-flight requests (each answered and logged) before exiting.`;

async function run(ctx: CommandContext): Promise<number> {
  const { runServeCommand } = await import('@kestrel/serve');
  return runServeCommand(ctx);
}

/** `kestrel serve`: the QC inspection server. */
export const commands: CommandSpec[] = [
  {
    path: ['serve'],
    summary: 'serve OK/NG inspections over HTTP with a durable SQLite inspection log',
    help: HELP,
    allowPositionals: false,
    options: {
      config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, db: { type: 'string' },
      store: { type: 'string' }, role: { type: 'string' },
      model: { type: 'string' }, vlm: { type: 'string' }, pipeline: { type: 'string' }, rules: { type: 'string' }, 'api-key': { type: 'string', multiple: true },
      'archive-ng': { type: 'string' }, queue: { type: 'string' }, concurrency: { type: 'string' }, workers: { type: 'string' },
      'body-limit': { type: 'string' }, timeout: { type: 'string' }, 'hash-key': { type: 'string' },
    },
    run,
  },
];
