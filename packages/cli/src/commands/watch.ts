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
  const { runWatchCommand } = await import('@kestrel/serve');
  return runWatchCommand(ctx);
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
