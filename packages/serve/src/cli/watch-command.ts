import { existsSync, statSync } from 'node:fs';
import { KestrelError } from '@kestrel/core';
import { InspectionLog } from '../inspection-log.js';
import { createInspector, readRules } from '../inspectors.js';
import { DirectoryWatcher } from '../watcher.js';
import type { CliContext } from './context.js';

/**
 * `kestrel watch DIR` after flag parsing: recover interrupted moves, then inspect each stable new file
 * once (or the files present now with --once). Resolves to the exit code once stopped.
 */
export async function runWatchCommand(ctx: CliContext): Promise<number> {
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
  const pipelineName = v.pipeline === undefined ? 'defects' : v.pipeline;
  if (pipelineName !== 'defects' && pipelineName !== 'detect') throw new KestrelError('E_OPTIONS', '--pipeline is defects or detect');
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
