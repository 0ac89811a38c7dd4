import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

const HELP = `Usage: kestrel eval captions --gt CAPTIONS.json --results RES.json [--all-images] [--json]

Scores caption results with BLEU-1..4, ROUGE-L and CIDEr(-D), giving the same numbers as
pycocoevalcap (PTB-style tokenization inside). METEOR and SPICE are not provided (they need Java).

  --gt FILE        COCO captions ground truth: {"images":[{"id"}], "annotations":[{"image_id","caption"}]}
  --results FILE   [{"image_id", "caption"}], one caption per image
  --all-images     score every GT image; a GT image without a result is an error
                   (default: score the images that have a result, as pycocoevalcap's example does)
  --json           JSON on stdout: Bleu_1..Bleu_4, ROUGE_L, CIDEr, per_image, n_images, ...

Bad input exits with E_COCO_FORMAT naming the bad field.`;

async function readJson(path: string, what: string): Promise<unknown> {
  const { readJson: read } = await import('@kestrel/core');
  return read(path, { what, readCode: 'E_IO', parseCode: 'E_COCO_FORMAT', parseDetails: { path: '(root)' } });
}

/** `kestrel eval captions`: pycocoevalcap-compatible BLEU / ROUGE-L / CIDEr. */
export const commands: CommandSpec[] = [
  {
    path: ['eval', 'captions'],
    summary: 'BLEU-1..4, ROUGE-L and CIDEr for caption results (pycocoevalcap numbers, no Java)',
    help: HELP,
    allowPositionals: false,
    options: {
      gt: { type: 'string' },
      results: { type: 'string' },
      'all-images': { type: 'boolean' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const gtPath = ctx.values.gt;
      const resPath = ctx.values.results;
      if (typeof gtPath !== 'string' || typeof resPath !== 'string') {
        throw new KestrelError('E_OPTIONS', 'both --gt CAPTIONS.json and --results RES.json are required. Run "kestrel eval captions --help".');
      }
      const [gt, res] = [await readJson(gtPath, 'ground truth'), await readJson(resPath, 'results')];
      const { evaluateCaptions } = await import('@kestrel/eval');
      const r = evaluateCaptions(gt, res, { images: ctx.values['all-images'] === true ? 'all' : 'results' });
      if (ctx.json) {
        printJson(ctx, r);
        return;
      }
      const rows: [string, number][] = [
        ['Bleu_1', r.Bleu_1], ['Bleu_2', r.Bleu_2], ['Bleu_3', r.Bleu_3], ['Bleu_4', r.Bleu_4], ['ROUGE_L', r.ROUGE_L], ['CIDEr', r.CIDEr],
      ];
      ctx.out.write(`images scored: ${r.n_images}\n`);
      for (const [k, v] of rows) ctx.out.write(`${k.padEnd(8)} ${v.toFixed(4)}\n`);
      ctx.out.write('METEOR   not provided (needs Java)\nSPICE    not provided (needs Java)\n');
      if (r.gt_images_without_result > 0) {
        ctx.err.write(`note: ${r.gt_images_without_result} ground-truth image(s) had no result and were not scored (use --all-images to require them)\n`);
      }
    },
  },
];
