import { z } from 'zod';
import {
  KestrelError, Tensor, loadImage, warnUnknownConfigKeys, padToSize, cropTiles, toChwNormalized, selectBestResolution, parseOptions,
  type ImageInput, type PixelImage, type RgbImage,
} from '@kestrel/core';

const int = z.number().int();

/**
 * `processor_config.json` of a DeepSeek-VL2 checkpoint (`DeepseekVLV2Processor`). Token ids are not in
 * the released file (they come from the tokenizer); the golden checkpoints add them, and
 * {@link VisionLanguageModel.load} fills them from tokenizer.json otherwise.
 */
export const ProcessorConfigSchema = z
  .object({
    candidate_resolutions: z.array(z.tuple([int.positive(), int.positive()])).min(1),
    patch_size: int.positive(),
    downsample_ratio: int.positive().default(2),
    image_mean: z.array(z.number()).length(3).default([0.5, 0.5, 0.5]),
    image_std: z.array(z.number().refine((v) => v !== 0, 'std must not be 0')).length(3).default([0.5, 0.5, 0.5]),
    normalize: z.boolean().default(true),
    image_token: z.string().default('<image>'),
    pad_token: z.string().default('<｜▁pad▁｜>'),
    add_special_token: z.boolean().default(false),
    /** the conversation template; only DeepSeek-VL2's "deepseek" is implemented (see chat.ts) */
    sft_format: z.literal('deepseek', { error: 'Kestrel implements only DeepSeek-VL2\'s "deepseek" conversation template; use a checkpoint with sft_format "deepseek"' }).default('deepseek'),
    // training-only: which prompt tokens are masked out of the loss
    mask_prompt: z.boolean().optional(),
    ignore_id: int.optional(),
    processor_class: z.string().optional(),
    image_token_id: int.nonnegative().optional(),
    bos_token_id: int.nonnegative().optional(),
    eos_token_id: int.nonnegative().optional(),
    pad_token_id: int.nonnegative().nullable().optional(),
  })
  .loose();
export type ProcessorConfig = z.output<typeof ProcessorConfigSchema>;

/** What {@link DeepseekVLV2Processor.preprocess} returns. */
export interface PreprocessResult {
  /** all tiles of all images, in prompt order: per image the global view then the local tiles, [tiles, 3, S, S] */
  pixelValues: Tensor<'f32'>;
  /** per image: [width tiles, height tiles] of the local view */
  imagesSpatialCrop: [number, number][];
  /** per image: number of image tokens it takes in the prompt */
  numImageTokens: number[];
  /** per image: tiles in `pixelValues` (1 + width tiles × height tiles) */
  numTiles: number[];
}

/** Options of {@link DeepseekVLV2Processor.preprocess}. */
export const PreprocessOptionsSchema = z.object({
  /** Tile the image at its best candidate resolution. Default: as DeepSeek-VL2, only when there are at most 2 images. */
  cropping: z.boolean().optional(),
});
export type PreprocessOptions = z.input<typeof PreprocessOptionsSchema>;

/** Token ids and image-token mask of a prompt, as `tokenize_with_images` makes them. */
export interface TokenizedPrompt {
  inputIds: Int32Array;
  /** 1 where an image embedding goes */
  imagesSeqMask: Uint8Array;
}

/** True when `x` is decoded pixels (a PixelImage) rather than something to decode. */
export function isPixelImage(x: unknown): x is PixelImage {
  return typeof x === 'object' && x !== null && (x as PixelImage).data instanceof Uint8Array && typeof (x as PixelImage).width === 'number' && typeof (x as PixelImage).channels === 'number';
}

/** An image as the VLM APIs accept it: a path, encoded bytes, a sharp instance, or decoded pixels. */
export type VlmImage = ImageInput | PixelImage;

/** Decode to 8-bit RGB (decoded pixels pass through; grayscale is expanded as Pillow's convert('RGB')). */
export async function toRgb(image: VlmImage): Promise<RgbImage> {
  if (isPixelImage(image)) {
    if (image.channels === 3) return image as RgbImage;
    const n = image.width * image.height;
    const data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = image.data[i]!;
    return { data, width: image.width, height: image.height, channels: 3 };
  }
  return loadImage(image);
}

/**
 * DeepSeek-VL2's image processor (`DeepseekVLV2Processor.tokenize_with_images`), bit-exact: pick the
 * best candidate resolution, letterbox a global view (S×S) and a local view (best size) with
 * Pillow-exact bicubic `ImageOps.pad` on mean-gray, cut the local view into S×S tiles, normalise to
 * CHW float32, and count the image tokens each image takes.
 */
export class DeepseekVLV2Processor {
  readonly config: ProcessorConfig;
  /** tile side S = candidate_resolutions[0][0] */
  readonly imageSize: number;

  constructor(config: unknown) {
    warnUnknownConfigKeys('processor_config.json', config, Object.keys(ProcessorConfigSchema.shape));
    try {
      this.config = parseOptions(ProcessorConfigSchema, config, 'processor_config');
    } catch (e) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', (e as Error).message, { cause: e });
    }
    this.imageSize = this.config.candidate_resolutions[0]![0];
    for (const [w, h] of this.config.candidate_resolutions) {
      if (w % this.imageSize !== 0 || h % this.imageSize !== 0) {
        throw new KestrelError('E_CHECKPOINT_FORMAT', `candidate resolution ${w}x${h} is not a multiple of the tile size ${this.imageSize}`);
      }
    }
  }

  /** Image tokens per tile side: ceil((S // P) / downsample_ratio). */
  get tokensPerSide(): number {
    return Math.ceil(Math.floor(this.imageSize / this.config.patch_size) / this.config.downsample_ratio);
  }

  /** Image tokens of one image tiled (w tiles × h tiles): global rows + newline, separator, local rows + newline. */
  countImageTokens(wTiles: number, hTiles: number): number {
    const s = this.tokensPerSide;
    return s * (s + 1) + 1 + hTiles * s * (wTiles * s + 1);
  }

  /** The fill colour of the letterbox: int(mean * 255) per channel. */
  private get fill(): number[] {
    return this.config.image_mean.map((m) => Math.trunc(m * 255));
  }

  /** Tile one decoded image: its global + local views as uint8 images, and its tile grid. */
  views(img: RgbImage, cropping: boolean): { global: RgbImage; local: RgbImage; crop: [number, number] } {
    const S = this.imageSize;
    const [bw, bh] = cropping ? selectBestResolution([img.width, img.height], this.config.candidate_resolutions) : [S, S];
    const global = padToSize(img, S, S, this.fill);
    const local = padToSize(img, bw, bh, this.fill);
    return { global, local, crop: [Math.floor(bw / S), Math.floor(bh / S)] };
  }

  /**
   * Preprocess the images of one prompt (in prompt order). Cropping defaults to `images.length <= 2`,
   * as DeepSeek-VL2 does (more images would make the prompt too long).
   */
  async preprocess(images: readonly VlmImage[], options?: PreprocessOptions): Promise<PreprocessResult> {
    const o = parseOptions(PreprocessOptionsSchema, options, 'preprocess options');
    const cropping = o.cropping ?? images.length <= 2;
    const rgb = await Promise.all(images.map((im) => toRgb(im)));
    const S = this.imageSize;
    const plane = 3 * S * S;
    const per = rgb.map((im) => this.views(im, cropping));
    const numTiles = per.map((v) => 1 + v.crop[0] * v.crop[1]);
    const total = numTiles.reduce((a, b) => a + b, 0);
    const pixels = new Float32Array(total * plane);
    const norm = this.config.normalize
      ? { mean: this.config.image_mean, std: this.config.image_std }
      : { mean: [0, 0, 0], std: [1, 1, 1] };
    let t = 0;
    for (const v of per) {
      toChwNormalized(v.global, { ...norm, out: pixels, offset: t++ * plane });
      for (const tile of cropTiles(v.local, S)) toChwNormalized(tile, { ...norm, out: pixels, offset: t++ * plane });
    }
    return {
      pixelValues: new Tensor('f32', [total, 3, S, S], pixels),
      imagesSpatialCrop: per.map((v) => v.crop),
      numImageTokens: per.map((v) => this.countImageTokens(v.crop[0], v.crop[1])),
      numTiles,
    };
  }

  /**
   * Build `input_ids` like `tokenize_with_images` in inference mode: text chunks between `<image>`
   * placeholders are encoded without special tokens, each placeholder becomes `numImageTokens[i]`
   * copies of `image_token_id`, BOS is prepended (no EOS).
   */
  tokenizeWithImages(prompt: string, numImageTokens: readonly number[], encode: (text: string) => number[], options: { bos?: boolean } = {}): TokenizedPrompt {
    const imageTokenId = this.config.image_token_id;
    if (imageTokenId === undefined) throw new KestrelError('E_CHECKPOINT_FORMAT', 'no image_token_id: add it to processor_config.json or provide a tokenizer.json with the image token');
    const parts = prompt.split(this.config.image_token);
    if (parts.length - 1 !== numImageTokens.length) {
      throw new KestrelError('E_IMAGE_TOKENS', `the prompt has ${parts.length - 1} "${this.config.image_token}" placeholder(s) but ${numImageTokens.length} image(s) were given`);
    }
    const ids: number[] = [];
    const mask: number[] = [];
    if (options.bos ?? true) {
      if (this.config.bos_token_id === undefined) throw new KestrelError('E_CHECKPOINT_FORMAT', 'no bos_token_id in processor_config.json or tokenizer.json');
      ids.push(this.config.bos_token_id);
      mask.push(0);
    }
    parts.forEach((text, i) => {
      for (const id of encode(text)) { ids.push(id); mask.push(0); }
      if (i < numImageTokens.length) {
        for (let k = 0; k < numImageTokens[i]!; k++) { ids.push(imageTokenId); mask.push(1); }
      }
    });
    return { inputIds: Int32Array.from(ids), imagesSeqMask: Uint8Array.from(mask) };
  }
}
