import { z } from 'zod';
import { KestrelError } from '@kestrel/core';
import { bleuScore } from './bleu.js';
import { ciderD } from './cider.js';
// np.mean, as pycocoevalcap's Rouge / Cider take it (numpy's blocked order, one implementation).
import { npMean } from '../coco/numeric.js';
import { precookCache } from './ngrams.js';
import { rougeL } from './rouge.js';
import { ptbTokenize } from './tokenizer.js';

/** The caption metrics of one image (or of the whole set). */
export interface CaptionScores {
  Bleu_1: number;
  Bleu_2: number;
  Bleu_3: number;
  Bleu_4: number;
  ROUGE_L: number;
  CIDEr: number;
}

/** Result of {@link scoreCaptions} / {@link evaluateCaptions}. */
export interface CaptionEvalResult extends CaptionScores {
  /** Per-image scores keyed by image id (as a string, like JSON object keys). */
  per_image: Record<string, CaptionScores>;
  /** Number of images scored. */
  n_images: number;
  /** BLEU's corpus totals: candidate length and effective ('closest') reference length. */
  bleu_corpus_totals: { testlen: number; reflen: number };
}

/** One image to score: already-tokenized references and candidate. */
export interface TokenizedCaptionItem {
  imageId: number | string;
  /** Tokenized references (words joined by single spaces), at least one. */
  refs: readonly string[];
  /** The tokenized candidate. */
  hyp: string;
}

/**
 * Score tokenized captions with BLEU-1..4, ROUGE-L and CIDEr-D exactly as pycocoevalcap's `Bleu(4)`,
 * `Rouge()` and `Cider()` do (no tokenization here; see {@link evaluateCaptions} for raw captions).
 * Items are scored in the given order (it only affects the last bits of the means).
 */
export function scoreCaptions(items: readonly TokenizedCaptionItem[]): CaptionEvalResult {
  if (items.length === 0) throw new KestrelError('E_COCO_FORMAT', 'no images to score: give at least one image with a reference and a result');
  for (const it of items) {
    if (it.refs.length === 0) {
      throw new KestrelError('E_COCO_FORMAT', `image ${String(it.imageId)} has no reference captions`, { details: { path: `image_id=${String(it.imageId)}` } });
    }
  }
  const hyps = items.map((it) => it.hyp);
  const refs = items.map((it) => it.refs);
  const cook = precookCache(4);
  const bleu = bleuScore(hyps, refs, 4, cook);
  const rouge = items.map((it) => rougeL(it.hyp, it.refs));
  const cider = ciderD(hyps, refs, 4, 6, cook);
  const per_image: Record<string, CaptionScores> = {};
  items.forEach((it, i) => {
    per_image[String(it.imageId)] = {
      Bleu_1: bleu.perImage[0]![i]!,
      Bleu_2: bleu.perImage[1]![i]!,
      Bleu_3: bleu.perImage[2]![i]!,
      Bleu_4: bleu.perImage[3]![i]!,
      ROUGE_L: rouge[i]!,
      CIDEr: cider.perImage[i]!,
    };
  });
  return {
    Bleu_1: bleu.scores[0]!,
    Bleu_2: bleu.scores[1]!,
    Bleu_3: bleu.scores[2]!,
    Bleu_4: bleu.scores[3]!,
    ROUGE_L: npMean(rouge),
    CIDEr: cider.score,
    per_image,
    n_images: items.length,
    bleu_corpus_totals: { testlen: bleu.testlen, reflen: bleu.reflen },
  };
}

const imageId = z.union([z.number().int(), z.string().min(1)]);

/** COCO captions ground truth: `images` and `annotations` with `image_id` and `caption`. */
export const CocoCaptionsGtSchema = z.object({
  images: z.array(z.looseObject({ id: imageId })),
  annotations: z.array(z.looseObject({ image_id: imageId, caption: z.string() })),
});

/** Caption results: `[{ image_id, caption }]`, one per image. */
export const CaptionResultsSchema = z.array(z.looseObject({ image_id: imageId, caption: z.string() }));

/** Raise E_COCO_FORMAT naming the first bad field, e.g. `annotations[3].caption`. */
function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.reduce<string>((p, k) => (typeof k === 'number' ? `${p}[${k}]` : p ? `${p}.${String(k)}` : String(k)), '');
  throw new KestrelError('E_COCO_FORMAT', `${what}: ${path || '(root)'}: ${issue.message}`, {
    details: { path: path || '(root)', issues: r.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
  });
}

/** Options for {@link evaluateCaptions}. */
export interface EvaluateCaptionsOptions {
  /**
   * Which images to score. `'results'` (default, as pycocoevalcap's example sets
   * `params['image_id'] = cocoRes.getImgIds()`): the images that have a result. `'all'`: every GT
   * image, and a GT image without a result is an error.
   */
  images?: 'results' | 'all';
}

/** {@link CaptionEvalResult} plus how many GT images had no result. */
export interface CaptionEvalReport extends CaptionEvalResult {
  /** GT images that were not scored because the results had no caption for them. */
  gt_images_without_result: number;
}

/**
 * Evaluate raw captions in COCO format the way pycocoevalcap's `COCOEvalCap` does (PTB-style
 * tokenization inside; METEOR and SPICE are not provided). `gt` is a COCO captions file object,
 * `results` a list of `{image_id, caption}`. Bad input → `E_COCO_FORMAT` with the path of the bad
 * field; a result for an image not in the GT, or two results for one image, are errors too.
 */
export function evaluateCaptions(gt: unknown, results: unknown, options: EvaluateCaptionsOptions = {}): CaptionEvalReport {
  const g = parseOrThrow(CocoCaptionsGtSchema, gt, 'ground truth');
  const res = parseOrThrow(CaptionResultsSchema, results, 'results');
  const key = (id: number | string): string => String(id);
  // GT image order (COCO.getImgIds() follows the `images` list) decides the scoring order.
  const order: string[] = [];
  const refs = new Map<string, string[]>();
  g.images.forEach((img) => {
    if (!refs.has(key(img.id))) { refs.set(key(img.id), []); order.push(key(img.id)); }
  });
  g.annotations.forEach((a, i) => {
    const r = refs.get(key(a.image_id));
    if (!r) {
      throw new KestrelError('E_COCO_FORMAT', `ground truth: annotations[${i}].image_id: ${key(a.image_id)} is not in images`, { details: { path: `annotations[${i}].image_id` } });
    }
    r.push(ptbTokenize(a.caption));
  });
  const hyp = new Map<string, string>();
  res.forEach((r, i) => {
    const id = key(r.image_id);
    if (!refs.has(id)) {
      throw new KestrelError('E_COCO_FORMAT', `results: [${i}].image_id: ${id} is not an image of the ground truth`, { details: { path: `[${i}].image_id` } });
    }
    if (hyp.has(id)) {
      throw new KestrelError('E_COCO_FORMAT', `results: [${i}].image_id: image ${id} has more than one result caption (pycocoevalcap scores exactly one per image)`, { details: { path: `[${i}].image_id` } });
    }
    hyp.set(id, ptbTokenize(r.caption));
  });
  const mode = options.images ?? 'results';
  const items: TokenizedCaptionItem[] = [];
  let missing = 0;
  for (const id of order) {
    const h = hyp.get(id);
    if (h === undefined) {
      if (mode === 'all') throw new KestrelError('E_COCO_FORMAT', `results: no caption for ground-truth image ${id}`, { details: { path: `image_id=${id}` } });
      missing++;
      continue;
    }
    const r = refs.get(id)!;
    if (r.length === 0) {
      throw new KestrelError('E_COCO_FORMAT', `ground truth: image ${id} has a result but no reference captions`, { details: { path: `image_id=${id}` } });
    }
    items.push({ imageId: id, refs: r, hyp: h });
  }
  if (items.length === 0) throw new KestrelError('E_COCO_FORMAT', 'results: no result caption matches a ground-truth image');
  return { ...scoreCaptions(items), gt_images_without_result: missing };
}
