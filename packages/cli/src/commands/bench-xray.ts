import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

function pct(x: { estimate: number; lower: number; upper: number } | null): string {
  return x ? `${x.estimate.toFixed(4)} [${x.lower.toFixed(4)}, ${x.upper.toFixed(4)}]` : 'n/a';
}

/** `kestrel bench xray`: accuracy and AUC with 95 % intervals on a labelled folder. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'xray'],
    summary: 'score an X-ray model: accuracy, AUC (95 % bootstrap intervals), confusion matrix',
    help: `Usage: kestrel bench xray --data DIR [--model MODEL_DIR|NAME] [--split S] [--json]

DIR holds labels.csv (file, split, label) and the images (PneumoniaMNIST layout). --split picks rows
(default all). --model defaults to the shipped xray-pneumonia. Prints accuracy and ROC AUC with 95 %
percentile-bootstrap intervals (2000 resamples, fixed seed), the confusion matrix at the model's
threshold and n.`,
    allowPositionals: false,
    options: { model: { type: 'string' }, data: { type: 'string' }, split: { type: 'string' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      if (typeof ctx.values.data !== 'string') throw new KestrelError('E_OPTIONS', '--data DIR is required. Run "kestrel bench xray --help".');
      const { benchXray } = await import('@kestrel/pipelines');
      const r = await benchXray({
        data: ctx.values.data,
        ...(typeof ctx.values.model === 'string' ? { model: ctx.values.model } : {}),
        ...(typeof ctx.values.split === 'string' ? { split: ctx.values.split } : {}),
      });
      if (ctx.json) { printJson(ctx, r); return; }
      const [neg, pos] = r.confusionMatrix.labels;
      ctx.out.write([
        `model ${r.model}`,
        `data ${r.data} split ${r.split}: n=${r.n} (${pos} ${r.positives}, ${neg} ${r.negatives})`,
        `accuracy ${pct(r.accuracy)}  (95 % CI)`,
        `auc      ${pct(r.auc)}  (95 % CI)`,
        `confusion at threshold ${r.threshold.toPrecision(4)} (rows true, cols predicted; ${neg}, ${pos}):`,
        `  ${r.confusionMatrix.matrix[0].join('  ')}`,
        `  ${r.confusionMatrix.matrix[1].join('  ')}`,
        `${r.msPerImage} ms/image`,
        '',
      ].join('\n'));
    },
  },
];
