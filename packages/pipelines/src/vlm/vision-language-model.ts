import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { KestrelError, Tensor, openSafetensors, parseOptions, readJson as readJsonFile } from '@kestrel/core';
import { getKernels, loadCudaKernels, type Kernels } from '@kestrel/native';
import { VisionTransformer, parseVisionConfig } from '@kestrel/vit';
import { MlpProjector, ImageTokenLayout, parseProjectorConfig } from '@kestrel/projector';
import { MoeLanguageModel, loadOptionsSchema, checkpointDType, type GenerateOptions, type GenerateResult, type StreamChunk } from '@kestrel/moe';
import { DeepseekVLV2Processor, type PreprocessResult, type VlmImage } from './processor.js';
import { TextTokenizer, processorSpecialTokens } from './tokenizer.js';
import { chat, type ChatMessage, type ChatOptions, type ChatResult } from './chat.js';
import { parseVl2Config, type Vl2Config } from './vl2-config.js';

/**
 * Options of {@link VisionLanguageModel.load}: the language model's load options that apply to the whole model.
 * `dtype` is the in-memory format of the vision tower, projector and language model (default: the checkpoint's own).
 */
export const VlmLoadOptionsSchema = loadOptionsSchema.pick({ backend: true, threads: true, dtype: true, device: true, mlaMode: true, expertsOn: true, cpuExpertLayers: true }).strict();
export type VlmLoadOptions = z.input<typeof VlmLoadOptionsSchema>;

/** Input of {@link VisionLanguageModel.forward} / `generate` / `stream`. */
export interface VlmInput {
  /** token ids with `image_token_id` at every image position (as `tokenize_with_images` makes them) */
  inputIds: ArrayLike<number>;
  /** the prompt's images, in order: paths, encoded Buffers, sharp instances or decoded pixels */
  images?: readonly VlmImage[];
  /** tile the images (default: only when there are at most 2, as DeepSeek-VL2) */
  cropping?: boolean;
  /** the processor's result for `images`, when already computed (skips preprocessing) */
  preprocessed?: PreprocessResult | null;
  /**
   * `imageEmbeds` of an earlier {@link VisionLanguageModel.prepareInputs} for the same images (and
   * cropping): skips the vision tower and projector, e.g. for several questions about one image.
   */
  imageEmbeds?: Tensor<'f32'> | null;
}

/** Everything between pixels and the language model, for inspection and tests. */
export interface PreparedInputs {
  /** [T, H]: token embeddings with image embeddings written at the image positions */
  inputsEmbeds: Tensor<'f32'>;
  /** [image tokens, H] in prompt order (empty without images) */
  imageEmbeds: Tensor<'f32'>;
  /** what the processor made (null without images) */
  preprocessed: PreprocessResult | null;
  /** ViT output [tiles, N, D] and projector output [tiles, h*w, H] (null without images) */
  visionFeatures: Tensor<'f32'> | null;
  projectorOut: Tensor<'f32'> | null;
  /** milliseconds spent in the vision tower and the projector (0 without images) */
  timings: { visionMs: number; projectorMs: number };
}

function readJson(path: string, what: string): Promise<unknown> {
  return readJsonFile(path, { what, readCode: 'E_CHECKPOINT_FORMAT', parseCode: 'E_CHECKPOINT_FORMAT' });
}

/** The options that were given (exactOptionalPropertyTypes: an absent option must not be passed as undefined). */
function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function firstId(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return undefined;
}

/**
 * A DeepSeek-VL2 model: SigLIP ViT + MLP projector + DeepSeek-V2 MoE language model, with its
 * processor and (when the checkpoint has one) its tokenizer. Numerically follows DeepSeek-VL2's
 * `DeepseekVLV2ForCausalLM` (checked layer by layer against the PyTorch reference).
 *
 * @example
 * const vlm = await VisionLanguageModel.load('models/deepseek-vl2-tiny');
 * const { pixelValues } = await vlm.processor.preprocess(['part.jpg']);
 */
export class VisionLanguageModel {
  private disposed = false;
  private constructor(
    /** the checkpoint directory */
    readonly dir: string,
    /** config.json as read */
    readonly config: Readonly<Vl2Config>,
    readonly processor: DeepseekVLV2Processor,
    /** the text tokenizer (null when the checkpoint has no tokenizer.json) */
    readonly tokenizer: TextTokenizer | null,
    readonly vision: VisionTransformer,
    readonly projector: MlpProjector,
    readonly layout: ImageTokenLayout,
    readonly language: MoeLanguageModel,
    readonly kernels: Kernels,
    /** ids that end generation */
    readonly eosTokenIds: readonly number[],
  ) {}

  /**
   * Load a DeepSeek-VL2 checkpoint directory: `config.json` (vision_config, projector_config,
   * language_config), `processor_config.json`, `model.safetensors` (or a sharded index) and, when
   * present, `tokenizer.json`.
   */
  static async load(dir: string, options?: VlmLoadOptions): Promise<VisionLanguageModel> {
    const o = parseOptions(VlmLoadOptionsSchema, options, 'VisionLanguageModel.load options');
    const st = await stat(dir).catch(() => null);
    if (!st || !st.isDirectory()) throw new KestrelError('E_MODEL_NOT_FOUND', `model directory not found: ${dir}`, { details: { path: dir } });
    const cfg = parseVl2Config(await readJson(join(dir, 'config.json'), 'config'), `${dir}/config.json`);

    // processor_config.json: as released; fall back to config.json for a checkpoint that lacks it.
    const pPath = join(dir, 'processor_config.json');
    const vc = parseVisionConfig(cfg.vision_config);
    const pc = parseProjectorConfig(cfg.projector_config);
    const rawProc: Record<string, unknown> = (await stat(pPath).catch(() => null))
      ? { ...(await readJson(pPath, 'processor config') as object) }
      : { candidate_resolutions: cfg.candidate_resolutions ?? [[vc.image_size, vc.image_size]], patch_size: vc.patch_size, downsample_ratio: pc.downsample_ratio };
    const lc = cfg.language_config;
    const hasTokenizer = Boolean(await stat(join(dir, 'tokenizer.json')).catch(() => null));
    const tokCfg = hasTokenizer ? await readJson(join(dir, 'tokenizer_config.json'), 'tokenizer config').catch(() => ({})) as Record<string, unknown> : {};
    const tokenText = (t: unknown): string | undefined => typeof t === 'string' ? t : typeof t === 'object' && t !== null ? (t as { content?: string }).content : undefined;
    const imageToken = typeof rawProc.image_token === 'string' ? rawProc.image_token : '<image>';
    const padToken = typeof rawProc.pad_token === 'string' ? rawProc.pad_token : '<｜▁pad▁｜>';
    // the tokens DeepseekVLV2Processor.__init__ adds when tokenizer.json lacks them
    const tokenizer = await TextTokenizer.load(dir, processorSpecialTokens({ padToken, imageToken, tokenizerHasPad: tokenText(tokCfg.pad_token) !== undefined }));
    const tokenId = (t: unknown): number | undefined => {
      const s = tokenText(t);
      return s !== undefined ? tokenizer?.tokenToId(s) : undefined;
    };
    rawProc.image_token_id ??= tokenizer?.tokenToId(imageToken);
    rawProc.bos_token_id ??= tokenId(tokCfg.bos_token) ?? firstId(lc.bos_token_id);
    rawProc.eos_token_id ??= tokenId(tokCfg.eos_token) ?? firstId(lc.eos_token_id);
    rawProc.pad_token_id ??= tokenId(tokCfg.pad_token) ?? tokenizer?.tokenToId(padToken);
    for (const k of ['image_token_id', 'bos_token_id', 'eos_token_id', 'pad_token_id']) if (rawProc[k] === undefined) delete rawProc[k];
    const processor = new DeepseekVLV2Processor(rawProc);
    if (processor.imageSize !== vc.image_size || processor.config.patch_size !== vc.patch_size) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `processor_config (tile ${processor.imageSize}, patch ${processor.config.patch_size}) disagrees with vision_config (image_size ${vc.image_size}, patch_size ${vc.patch_size})`);
    }

    // device 'cuda': the CUDA kernels, or E_BACKEND_UNAVAILABLE saying why not (no build, driver or GPU)
    const kernels = o.device === 'cuda'
      ? await loadCudaKernels()
      : await getKernels({ backend: o.backend, ...(o.threads !== undefined ? { threads: o.threads } : {}) });
    const file = await openSafetensors(dir);
    let vision: VisionTransformer, projector: MlpProjector, layout: ImageTokenLayout;
    let dtype = o.dtype;
    try {
      dtype ??= checkpointDType(file, 'language.model.embed_tokens.weight');
      vision = await VisionTransformer.load(file, cfg.vision_config, kernels, 'vision.', o.dtype);
      projector = await MlpProjector.load(file, cfg.projector_config, kernels, 'projector.', o.dtype);
      layout = await ImageTokenLayout.load(file, cfg, projector.outDim);
    } finally {
      await file.close();
    }
    const language = await MoeLanguageModel.load(dir, { ...withoutUndefined(o), ...(dtype !== undefined ? { dtype } : {}), config: lc, prefix: 'language.' });
    if (language.config.hidden !== projector.outDim) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `projector n_embed ${projector.outDim} differs from the language model's hidden_size ${language.config.hidden}`);
    }
    const eos = new Set<number>(language.config.eosIds);
    if (processor.config.eos_token_id !== undefined) eos.add(processor.config.eos_token_id);
    return new VisionLanguageModel(dir, cfg, processor, tokenizer, vision, projector, layout, language, kernels, [...eos]);
  }

  private check(): void {
    if (this.disposed) throw new KestrelError('E_OPTIONS', 'this VisionLanguageModel was disposed; load it again');
  }

  /** The id that marks image positions in `inputIds`. */
  get imageTokenId(): number {
    const id = this.processor.config.image_token_id;
    if (id === undefined) throw new KestrelError('E_CHECKPOINT_FORMAT', `${this.dir}: no image_token_id in processor_config.json and no "<image>" token in tokenizer.json`);
    return id;
  }

  /**
   * Pixels → ViT → projector → image-token layout, then the token embeddings with the image
   * embeddings written, in order, at the `image_token_id` positions (`masked_scatter_`).
   * Throws `E_IMAGE_TOKENS` when the number of image positions differs from what the images need.
   */
  async prepareInputs(input: VlmInput): Promise<PreparedInputs> {
    this.check();
    const ids = Array.from(input.inputIds);
    const images = input.images ?? [];
    const imgId = images.length ? this.imageTokenId : this.processor.config.image_token_id;
    const positions: number[] = [];
    if (imgId !== undefined) ids.forEach((v, i) => { if (v === imgId) positions.push(i); });
    const inputsEmbeds = this.language.embed(ids);
    const H = this.language.config.hidden;
    if (images.length === 0) {
      if (positions.length) throw new KestrelError('E_IMAGE_TOKENS', `inputIds hold ${positions.length} image-token positions but no images were given`);
      return { inputsEmbeds, imageEmbeds: new Tensor('f32', [0, H]), preprocessed: null, visionFeatures: null, projectorOut: null, timings: { visionMs: 0, projectorMs: 0 } };
    }
    const pre = input.preprocessed ?? await this.processor.preprocess(images, input.cropping !== undefined ? { cropping: input.cropping } : {});
    const need = pre.numImageTokens.reduce((a, b) => a + b, 0);
    if (positions.length !== need) {
      throw new KestrelError('E_IMAGE_TOKENS', `inputIds hold ${positions.length} image-token positions (id ${imgId}) but the ${images.length} image(s) need ${need} (${pre.numImageTokens.join(' + ')}); build the prompt with the processor's token counts`, {
        details: { positions: positions.length, needed: pre.numImageTokens },
      });
    }
    if (input.imageEmbeds) {
      const ie = input.imageEmbeds;
      if (!(ie instanceof Tensor) || ie.dtype !== 'f32' || ie.shape.length !== 2 || ie.shape[0] !== need || ie.shape[1] !== H) {
        throw new KestrelError('E_OPTIONS', `imageEmbeds must be the [${need}, ${H}] f32 imageEmbeds of prepareInputs for the same images`);
      }
      const e = inputsEmbeds.data;
      positions.forEach((p, j) => e.set(ie.data.subarray(j * H, (j + 1) * H), p * H));
      return { inputsEmbeds, imageEmbeds: ie, preprocessed: pre, visionFeatures: null, projectorOut: null, timings: { visionMs: 0, projectorMs: 0 } };
    }
    const t0 = performance.now();
    const { features } = this.vision.encode(pre.pixelValues);
    const t1 = performance.now();
    const projectorOut = this.projector.forward(features);
    const timings = { visionMs: t1 - t0, projectorMs: performance.now() - t1 };
    const imageEmbeds = this.layout.arrange(projectorOut, pre.imagesSpatialCrop);
    if (imageEmbeds.shape[0] !== positions.length) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `the projector makes ${imageEmbeds.shape[0]} image tokens but processor_config (patch_size, downsample_ratio) counts ${positions.length}; the two configs disagree`);
    }
    const e = inputsEmbeds.data;
    const src = imageEmbeds.data;
    positions.forEach((p, j) => e.set(src.subarray(j * H, (j + 1) * H), p * H));
    return { inputsEmbeds, imageEmbeds, preprocessed: pre, visionFeatures: features, projectorOut, timings };
  }

  /** Full-sequence logits [T, vocab] of the prompt (prefill, no cache). */
  async forward(input: VlmInput): Promise<{ logits: Tensor<'f32'> }> {
    const { inputsEmbeds } = await this.prepareInputs(input);
    const { logits } = this.language.forward({ inputsEmbeds });
    return { logits };
  }

  /**
   * Generate after the prompt with a KV cache (the MoE model's generator: greedy at temperature 0,
   * else temperature / top-k / top-p sampling; stop tokens and strings; `signal` cancels). Yields each
   * new token (and its text when the checkpoint has a tokenizer) as it is chosen.
   */
  async *stream(input: VlmInput, options?: GenerateOptions): AsyncGenerator<StreamChunk, void, undefined> {
    const { inputsEmbeds } = await this.prepareInputs(input);
    yield* this.language.stream({ inputsEmbeds, inputIds: Array.from(input.inputIds) }, options);
  }

  /** Generate after the prompt (see {@link stream}): the new token ids, their text and why it stopped. */
  async generate(input: VlmInput, options?: GenerateOptions): Promise<GenerateResult> {
    const { inputsEmbeds } = await this.prepareInputs(input);
    return this.language.generate({ inputsEmbeds, inputIds: Array.from(input.inputIds) }, options);
  }

  /**
   * Answer OpenAI-style messages (`[{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text }] }]`)
   * in DeepSeek-VL2's conversation format. Needs the checkpoint's tokenizer.json.
   */
  chat(messages: readonly ChatMessage[], options?: ChatOptions): Promise<ChatResult> {
    return chat(this, messages, options);
  }

  /** Release the weights of all three parts (ViT, projector, language model). The model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.vision.dispose();
    this.projector.dispose();
    this.language.dispose();
  }
}
