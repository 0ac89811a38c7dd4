import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import { toRgb, type VlmImage } from '../vlm/processor.js';
import type { CallOptions } from '../vlm/pipelines.js';
import { GroundOptionsSchema, checkQuery, detectCategories, detectWith, groundResult, groundingText, type GroundCategory, type GroundPipeline, type GroundResult } from '../vlm/ground.js';
import { imageDataUrl } from './images.js';
import { connect, noLocalModel, refuseLocalOptions } from './pipelines.js';

/** Options of a remote `ground` pipeline: the local ones, plus the tile size the `padded` frame needs. */
const RemoteGroundOptionsSchema = GroundOptionsSchema.extend({
  /** the server model's global-view tile size S (DeepSeek-VL2: 384); only the `padded` frame needs it */
  imageSize: z.number().int().positive().optional(),
}).strict();

/** One image as the remote ground pipeline needs it: its size (for the box mapping) and its data URL. */
interface SentImage { width: number; height: number; url: string }

async function prepare(image: VlmImage): Promise<SentImage> {
  // decoded here as the local pipeline decodes it: the boxes map to the same pixel size
  const rgb = await toRgb(image);
  return { width: rgb.width, height: rgb.height, url: await imageDataUrl(image) };
}

/**
 * `ground` on a remote OpenAI-compatible server (`model: 'openai:URL'`) serving a DeepSeek-VL2 model:
 * the local pipeline's prompt (an image part, then the grounding text, which the server joins as
 * `<image>\n<|ref|>QUERY<|/ref|>.`), sent with `skip_special_tokens: false` so the answer keeps its
 * `<|ref|>`/`<|det|>` tags (vLLM and `kestrel serve --vlm` take it); the answer is parsed and mapped
 * to pixels here, with the image's size read locally. Same result shapes as the local pipeline;
 * `usage.imageTokens` is 0 (the API does not report it).
 */
export async function createRemoteGround(options: unknown): Promise<GroundPipeline> {
  refuseLocalOptions(options);
  const o = parseOptions(RemoteGroundOptionsSchema, options, 'ground options');
  if (o.frame === 'padded' && o.imageSize === undefined) {
    throw new KestrelError('E_OPTIONS', "frame 'padded' on a remote model needs imageSize (the server model's tile size, 384 for DeepSeek-VL2): the server does not report it");
  }
  const { info, run } = await connect(o);
  const query = async (img: SentImage, q0: string, call: CallOptions | undefined): Promise<GroundResult> => {
    const q = checkQuery(q0);
    const messages = [
      ...(o.systemPrompt ? [{ role: 'system' as const, content: o.systemPrompt }] : []),
      { role: 'user' as const, content: [{ type: 'image' as const, image: img.url }, { type: 'text' as const, text: groundingText(o.mode, q) }] },
    ];
    // the image part carries the data URL made once by prepare()
    const r = await run(messages, { ...call, skipSpecialTokens: false }, async (url) => url as string);
    return groundResult(r.text, q, { width: img.width, height: img.height, ...(o.imageSize ? { tile: o.imageSize } : {}) }, o.frame, r.usage);
  };
  const one = async (image: VlmImage, q: string, call?: CallOptions): Promise<GroundResult> => {
    checkQuery(q);
    return query(await prepare(image), q, call);
  };
  const detect = async (image: VlmImage, categories: readonly GroundCategory[], call?: CallOptions): ReturnType<GroundPipeline['detect']> => {
    const cats = detectCategories(categories); // before the image is read or anything is sent
    const img = await prepare(image); // decoded and encoded once for all queries
    return detectWith(cats, (q) => query(img, q, call));
  };
  return Object.defineProperties(Object.assign(one, { detect, remote: info, dispose: () => undefined }), { model: noLocalModel(info) }) as unknown as GroundPipeline;
}
