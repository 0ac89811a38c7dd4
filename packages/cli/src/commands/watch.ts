import type { CommandContext, CommandSpec } from '../command.js';

const HELP = `Usage: kestrel watch DIR --model NAME_OR_DIR [options]

Inspect every image that appears in DIR exactly once, log it in the inspection log, then move it to
DIR/ok/ or DIR/ng/ (unreadable files go to DIR/rejected/). A journal in the same database makes a
restart neither skip nor repeat a file. Files are read only once their size has been stable for
--stable-ms; hidden and temporary names (.x, *.tmp, *.part, *.crdownload) are ignored, so cameras
may write in place or write-then-rename.

Options:
  --model NAME_OR_DIR  defects model: defects-elpv, anomaly-magnetic-tile, or a model folder
  --pipeline P         defects (default) or detect (a detector plus --rules FILE|JSON)
  --rules FILE|JSON    detect rules, e.g. {"ngLabels":["scratch"],"minScore":0.5}
  --db FILE            inspection log (default kestrel-inspections.db; may be shared with kestrel serve)
  --station NAME       station name logged with each inspection (default "watch")
  --leave              leave files in place instead of moving them
  --interval MS        polling interval (default 500)
  --stable-ms MS       size/mtime must be unchanged this long before reading (default 1000)
  --archive-ng DIR     also save NG images to DIR/<date>/<id>.<ext>
  --once               handle the files present now (after they are stable), then exit

One JSON line per file on stdout: {"file", "verdict", "score", "id", "dest"} or {"file", "error"}.
SIGTERM/SIGINT finish the current file and exit.`;

async function run(ctx: CommandContext): Promise<number> {
  const { KestrelError } = await import('@kestrel/core');
  const v = ctx.values;
  const dir = ctx.positionals[0];
  if (!dir || ctx.positionals.length > 1) throw new KestrelError('E_OPTIONS', 'give exactly one folder to watch: kestrel watch DIR --model NAME');
  if (typeof v.model !== 'string') throw new KestrelError('E_OPTIONS', 'give --model NAME_OR_DIR (e.g. anomaly-magnetic-tile)');
  const int = (x: unknown, flag: string): number | undefined => {
    if (x === undefined) return undefined;
    const n = Number(x);
    if (!Number.isInteger(n) || n < 0) throw new KestrelError('E_OPTIONS', `${flag} needs a whole number of milliseconds`);
    return n;
  };
  const { InspectionLog } = await import('@kestrel/serve');
  const { createInspector, readRules } = await import('@kestrel/serve');
  const pipelineName = v.pipeline === undefined ? 'defects' : v.pipeline;
  if (pipelineName !== 'defects' && pipelineName !== 'detect') throw new KestrelError('E_OPTIONS', '--pipeline is defects or detect');
  const { DirectoryWatcher } = await import('@kestrel/serve');
  const intervalMs = int(v.interval, '--interval');
  const stableMs = int(v['stable-ms'], '--stable-ms');
  const options = {
    dir,
    mode: v.leave === true ? 'leave' as const : 'move' as const,
    ...(typeof v.station === 'string' ? { station: v.station } : {}),
    ...(intervalMs !== undefined ? { intervalMs } : {}),
    ...(stableMs !== undefined ? { stableMs } : {}),
    ...(typeof v['archive-ng'] === 'string' ? { archiveNgDir: v['archive-ng'] } : {}),
  };
  const { existsSync, statSync } = await import('node:fs');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new KestrelError('E_IO', `kestrel watch: ${dir} is not a folder`);
  const inspector = await createInspector({ pipeline: pipelineName, model: v.model, rules: typeof v.rules === 'string' ? readRules(v.rules) : undefined });
  const log = InspectionLog.open(typeof v.db === 'string' ? v.db : 'kestrel-inspections.db');
  let handled = 0;
  const watcher = new DirectoryWatcher(options, inspector, log, (e) => {
    handled++;
    const line = e.record
      ? { file: e.file, verdict: e.record.verdict, score: e.record.score, threshold: e.record.threshold, id: e.record.id, dest: e.dest ?? null }
      : { file: e.file, error: e.error, dest: e.dest ?? null };
    ctx.out.write(JSON.stringify(line) + '\n');
  });
  try {
    const recovered = watcher.recover();
    if (recovered && !ctx.json) ctx.err.write(`kestrel watch: finished ${recovered} move(s) interrupted by the last stop\n`);
    if (v.once === true) {
      // Two listings stableMs apart: a file must be seen unchanged before it is read.
      const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
      await watcher.scanOnce();
      for (let i = 0; i < 3; i++) {
        await wait(watcher.options.stableMs + 50);
        await watcher.scanOnce();
      }
      return 0;
    }
    if (!ctx.json) ctx.err.write(`kestrel watch: watching ${watcher.dir} (log ${log.file})\n`);
    await new Promise<void>((resolveRun) => {
      const stop = (): void => { void watcher.stop().then(resolveRun); };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      watcher.start();
    });
    if (!ctx.json) ctx.err.write(`kestrel watch: stopped after ${handled} file(s)\n`);
    return 0;
  } finally {
    await watcher.stop();
    log.close();
  }
}

/** `kestrel watch`: the line-camera folder watcher. */
export const commands: CommandSpec[] = [
  {
    path: ['watch'],
    summary: 'inspect each image dropped into a folder exactly once, then move it to ok/ or ng/',
    help: HELP,
    options: {
      model: { type: 'string' }, pipeline: { type: 'string' }, rules: { type: 'string' }, db: { type: 'string' }, station: { type: 'string' }, leave: { type: 'boolean' },
      interval: { type: 'string' }, 'stable-ms': { type: 'string' }, 'archive-ng': { type: 'string' }, once: { type: 'boolean' },
    },
    run,
  },
];
