import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

function fmt(x: number | null | undefined): string {
  return x === null || x === undefined ? 'n/a' : x < 1e-3 && x > 0 ? x.toExponential(2) : x.toFixed(4);
}

/** `kestrel bench defects`: accuracy, AUC, FPR/TPR at the stored threshold with exact intervals. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'defects'],
    summary: 'score a defects model: accuracy, AUC, FPR (Clopper-Pearson 95 %), TPR at its threshold',
    help: `Usage: kestrel bench defects --data DIR [--model MODEL_DIR|NAME] [--files LIST] [--json]

DIR holds labels.csv in the ELPV layout (whitespace-separated "path probability type") or the
magnetic-tile layout (CSV with image, defective); the layout is detected from the file. --files
restricts scoring to the images listed (paths relative to DIR), e.g. a model's holdout.txt.
--model defaults to the shipped defects-elpv. Prints accuracy (bootstrap 95 % CI), ROC AUC
(stratified bootstrap 95 % CI), FPR with its exact Clopper-Pearson 95 % interval and one-sided
upper bound, TPR, and n. The JSON carries "confusion" {tp, fp, tn, fn}, which
"kestrel claims --bench FILE" reads.`,
    allowPositionals: false,
    options: { model: { type: 'string' }, data: { type: 'string' }, files: { type: 'string' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      if (typeof ctx.values.data !== 'string') throw new KestrelError('E_OPTIONS', '--data DIR is required. Run "kestrel bench defects --help".');
      const { benchDefects } = await import('@kestrel/pipelines');
      const r = await benchDefects({
        data: ctx.values.data,
        ...(typeof ctx.values.model === 'string' ? { model: ctx.values.model } : {}),
        ...(typeof ctx.values.files === 'string' ? { files: ctx.values.files } : {}),
      });
      if (ctx.json) { printJson(ctx, r); return; }
      const c = r.confusion;
      ctx.out.write([
        `model ${r.model} (${r.kind})`,
        `data ${r.data} (${r.layout}${r.files ? `, files ${r.files}` : ''}): n=${r.n} (defective ${r.positives}, good ${r.negatives})`,
        `accuracy ${fmt(r.accuracy.estimate)} [${fmt(r.accuracy.lower)}, ${fmt(r.accuracy.upper)}]  (95 % bootstrap CI)`,
        `auc      ${r.auc ? `${fmt(r.auc.estimate)} [${fmt(r.auc.lower)}, ${fmt(r.auc.upper)}]` : 'n/a'}  (95 % bootstrap CI)`,
        `at threshold ${r.threshold.toPrecision(4)}: fpr ${fmt(r.fpr)} (${c.fp}/${r.negatives}) [${fmt(r.fprInterval?.lower)}, ${fmt(r.fprInterval?.upper)}] Clopper-Pearson 95 %, one-sided upper ${fmt(r.fprUpper95)}`,
        `                tpr ${fmt(r.tpr)} (${c.tp}/${r.positives}) [${fmt(r.tprInterval?.lower)}, ${fmt(r.tprInterval?.upper)}]`,
        `${r.msPerImage} ms/image`,
        '',
      ].join('\n'));
    },
  },
];
