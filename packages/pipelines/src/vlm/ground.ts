import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import type { VisionLanguageModel } from './vision-language-model.js';
import type { Tensor, RgbImage } from '@kestrel/core';
import type { GenerateOptions } from '@kestrel/moe';
import { toRgb, type VlmImage, type PreprocessResult } from './processor.js';
import { conversationTokenizer, type ChatUsage } from './chat.js';
import { tokenizeConversation } from './conversation.js';
import { modelOptions, loadModel, genOptions, type CallOptions } from './pipelines.js';
import { GROUNDING_TOKENS } from './tokenizer.js';
import { parseGrounding, type GroundingFlag } from './grounding-parse.js';
import { boxFromDeepseek, type FrameGeometry, type GroundingFrame } from './grounding-coords.js';
import type { RemoteModelInfo } from '../remote/options.js';

/** Options of `pipeline('ground', ...)`. */
export const GroundOptionsSchema = z.object({
  ...modelOptions,
  maxNewTokens: z.number().int().positive().default(128),
  /** what the 0–999 coordinates are a fraction of (see grounding-coords.ts); DeepSeek's demo: 'image' */
  frame: z.enum(['image', 'padded']).default('image'),
  /**
   * 'ref' (default): DeepSeek's referring-expression prompt `<image>\n<|ref|>QUERY<|/ref|>.`;
   * 'caption': grounded captioning, `<image>\n<|grounding|>QUERY` (boxes for the objects it mentions)
   */
  mode: z.enum(['ref', 'caption']).default('ref'),
}).strict();
export type GroundOptions = z.input<typeof GroundOptionsSchema>;

/** One grounded box. */
export interface GroundDetection {
  /** COCO [x, y, width, height] in pixels of the original image */
  bbox: [number, number, number, number];
  /** the `<|ref|>` text the model wrote for it (the query when it wrote none) */
  label: string;
  /** DeepSeek-VL2 gives no confidence: 1 for every box */
  score: number;
  /** the box as the model wrote it (0–999) */
  deepseekBox: [number, number, number, number];
}

/** Result of one grounding query. */
export interface GroundResult {
  detections: GroundDetection[];
  /** why part of the answer gave no box (empty when every block parsed) */
  flags: GroundingFlag[];
  /** the answer with its special tokens */
  text: string;
  usage: ChatUsage;
}

/** A detection of the open-vocabulary detect: the same shape as the `detect` pipeline's. */
export interface VlmDetection {
  bbox: [number, number, number, number];
  score: number;
  categoryId: number;
  label: string;
}

/** A category to look for: a name, or a COCO category `{ id, name }`. */
export type GroundCategory = string | { id: number; name: string };

/** `pipeline('ground')`: DeepSeek-VL2 visual grounding. */
export interface GroundPipeline {
  /** Boxes of what `query` describes ("the red car") in one image. */
  (image: VlmImage, query: string, options?: CallOptions): Promise<GroundResult>;
  /**
   * Open-vocabulary detection: one grounding query per category name; detections in the `detect`
   * pipeline's shape (categoryId = the category's id, or its index + 1 for plain names), ready for
   * `evaluateCoco` after adding `image_id`. `flags` collects the flags of all queries.
   */
  detect(image: VlmImage, categories: readonly GroundCategory[], options?: CallOptions): Promise<{ detections: VlmDetection[]; flags: GroundingFlag[] }>;
  /** the loaded model; a remote pipeline throws E_UNSUPPORTED here */
  readonly model: VisionLanguageModel;
  /** where a remote pipeline runs (`model: 'openai:URL'`); undefined for a local model */
  readonly remote?: RemoteModelInfo;
  dispose(): void;
}

declare module '../registry.js' {
  interface PipelineTasks {
    ground: { options: GroundOptions; fn: GroundPipeline };
  }
}

/** One image's preprocessing and image embeddings, shared by the queries of `detect`. */
interface ImageCache { pre: PreprocessResult; embeds: Tensor<'f32'> | null }

/** The grounding tokens must exist and be inside the model's vocabulary, or the prompt cannot be embedded. */
function checkGroundingTokens(model: VisionLanguageModel): void {
  const vocab = model.language.config.vocab;
  const bad = GROUNDING_TOKENS.filter((t) => { const id = model.tokenizer?.tokenToId(t); return id === undefined || id >= vocab; });
  if (bad.length) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${model.dir}: the tokenizer's ${bad.join(', ')} ${bad.length > 1 ? 'have ids' : 'has an id'} outside the model's vocabulary of ${vocab} (tokenizer.json lacks DeepSeek-VL2's grounding tokens); grounding needs a DeepSeek-VL2 tokenizer`);
  }
}

/** The query text of a grounding prompt; `<|ref|>` tags in it would break the format. */
export function checkQuery(query: unknown): string {
  if (typeof query !== 'string' || query.trim() === '') throw new KestrelError('E_OPTIONS', 'the grounding query must be a non-empty string, e.g. "the red car"');
  if (/<\|\/?(ref|det|grounding)\|>|<image>/.test(query)) throw new KestrelError('E_OPTIONS', 'the grounding query must be plain text (no <|ref|>, <|det|>, <|grounding|> or <image> tags); the pipeline adds them');
  return query.trim();
}

/**
 * The text that follows the image in a grounding prompt (the user turn is `<image>\n` + this):
 * `<|ref|>QUERY<|/ref|>.` in 'ref' mode, `<|grounding|>QUERY` in 'caption' mode. Local and remote
 * pipelines both build their prompt here; `query` must have passed {@link checkQuery}.
 */
export function groundingText(mode: 'ref' | 'caption', query: string): string {
  return mode === 'ref' ? `<|ref|>${query}<|/ref|>.` : `<|grounding|>${query}`;
}

/**
 * A decoded answer (special tokens kept) -> the pipeline's result: boxes parsed, mapped to pixels of
 * the original image in `frame`, degenerate ones dropped and flagged; boxes without a `<|ref|>` take
 * the query as label.
 */
export function groundResult(text: string, query: string, geometry: FrameGeometry, frame: GroundingFrame, usage: ChatUsage): GroundResult {
  const parsed = parseGrounding(text);
  const detections: GroundDetection[] = [];
  for (const b of parsed.boxes) {
    const bbox = boxFromDeepseek(b.box, geometry, frame);
    if (bbox[2] <= 0 || bbox[3] <= 0) { if (!parsed.flags.includes('degenerate_box')) parsed.flags.push('degenerate_box'); continue; }
    detections.push({ bbox, label: b.label ?? query, score: 1, deepseekBox: b.box });
  }
  return { detections, flags: parsed.flags, text, usage };
}

/** `detect`'s categories as `{ id, name }` (plain names get index + 1), every name checked before any query runs. */
export function detectCategories(categories: readonly GroundCategory[]): { id: number; name: string }[] {
  if (!Array.isArray(categories) || categories.length === 0) throw new KestrelError('E_OPTIONS', 'detect needs a non-empty list of category names or {id, name} objects');
  const cats = categories.map((c, i) => {
    if (typeof c === 'string') return { id: i + 1, name: c };
    if (c && typeof c === 'object' && Number.isInteger(c.id) && typeof c.name === 'string') return c;
    throw new KestrelError('E_OPTIONS', `categories[${i}] must be a name or {id, name}`);
  });
  for (const c of cats) checkQuery(c.name);
  return cats;
}

/** One query per category through `run`; the label of each detection is its category, whatever words the model echoed in `<|ref|>`. */
export async function detectWith(cats: readonly { id: number; name: string }[], run: (query: string) => Promise<GroundResult>): Promise<{ detections: VlmDetection[]; flags: GroundingFlag[] }> {
  const detections: VlmDetection[] = [];
  const flags: GroundingFlag[] = [];
  for (const c of cats) {
    const r = await run(c.name);
    for (const d of r.detections) detections.push({ bbox: d.bbox, score: d.score, categoryId: c.id, label: c.name });
    for (const f of r.flags) if (!flags.includes(f)) flags.push(f);
  }
  return { detections, flags };
}

async function createGround(options: unknown): Promise<GroundPipeline> {
  const o = parseOptions(GroundOptionsSchema, options, 'ground options');
  const { model, owned } = await loadModel(o);
  try { checkGroundingTokens(model); } catch (e) { if (owned) model.dispose(); throw e; }
  const tok = model.tokenizer!;
  const conv = conversationTokenizer(model);
  /** One query on a decoded image; with `cache`, the image's preprocessing and embeddings are computed once and reused. */
  const run = async (rgb: RgbImage, query: string, call: CallOptions | undefined, cache?: ImageCache): Promise<GroundResult> => {
    const t0 = performance.now();
    const q = checkQuery(query);
    const content = `<image>\n${groundingText(o.mode, q)}`;
    const msgs = [...(o.systemPrompt ? [{ role: 'system' as const, content: o.systemPrompt }] : []), { role: 'user' as const, content, images: [rgb] }];
    const pre = cache?.pre ?? await model.processor.preprocess([rgb]);
    const { inputIds } = tokenizeConversation(msgs, pre.numImageTokens, conv);
    if (cache && !cache.embeds) cache.embeds = (await model.prepareInputs({ inputIds, images: [rgb], preprocessed: pre })).imageEmbeds;
    const { onText, ...gen } = genOptions(o, call) as GenerateOptions & { onText?: (t: string) => void };
    const tokenIds: number[] = [];
    for await (const c of model.stream({ inputIds, images: [rgb], preprocessed: pre, imageEmbeds: cache?.embeds ?? null }, gen)) {
      tokenIds.push(c.tokenId);
      if (c.text) onText?.(c.text);
    }
    const text = tok.decode(tokenIds, false);
    const imageTokens = pre.numImageTokens.reduce((a, b) => a + b, 0);
    const geometry = { width: rgb.width, height: rgb.height, tile: model.processor.imageSize };
    return groundResult(text, q, geometry, o.frame, { promptTokens: inputIds.length, imageTokens, completionTokens: tokenIds.length, ms: performance.now() - t0 });
  };
  const one = async (image: VlmImage, query: string, call?: CallOptions): Promise<GroundResult> => run(await toRgb(image), query, call);
  const detect = async (image: VlmImage, categories: readonly GroundCategory[], call?: CallOptions): Promise<{ detections: VlmDetection[]; flags: GroundingFlag[] }> => {
    const cats = detectCategories(categories); // before any model work
    // the image is decoded, tiled and encoded by the vision tower once for all queries
    const rgb = await toRgb(image);
    const cache: ImageCache = { pre: await model.processor.preprocess([rgb]), embeds: null };
    return detectWith(cats, (q) => run(rgb, q, call, cache));
  };
  return Object.assign(one, { detect, model, dispose: () => { if (owned) model.dispose(); } }) as GroundPipeline;
}

/** Task module entry (see registry.ts): 'ground'. */
export async function createPipeline(task: string, options: unknown): Promise<GroundPipeline> {
  if (task === 'ground') return createGround(options);
  throw new KestrelError('E_OPTIONS', `the grounding module has no task "${task}"`);
}
