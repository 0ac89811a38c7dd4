import { KestrelError, Tensor } from '@kestrel/core';
import type { WeightSource } from './mlp-projector.js';

/** Where the global view goes relative to the local tiles. */
export type GlobalViewPos = 'head' | 'tail';

/** Tiles of one image: (width tiles, height tiles), as `images_spatial_crop`. */
export type SpatialCrop = readonly [number, number];

/**
 * Number of image tokens for one image whose tiles project to `side`×`side` tokens:
 * global rows (each + newline), one view separator, local rows (each + newline).
 */
export function numImageTokens(side: number, crop: SpatialCrop): number {
  const [tw, th] = crop;
  return side * (side + 1) + 1 + th * side * (tw * side + 1);
}

/**
 * The `tile_tag: "2D"` image-token layout of DeepSeek-VL2: for each image, the global tile as `side`
 * rows each followed by `image_newline`, then `view_seperator` (the checkpoint's spelling), then the
 * local tiles stitched into one (th·side)×(tw·side) grid, each row followed by `image_newline`.
 * `global_view_pos: "tail"` puts the local grid first.
 */
export class ImageTokenLayout {
  readonly globalViewPos: GlobalViewPos;
  readonly newline: Float32Array;
  readonly separator: Float32Array;

  constructor(newline: Float32Array, separator: Float32Array, globalViewPos: GlobalViewPos = 'head') {
    if (newline.length !== separator.length) throw new KestrelError('E_CHECKPOINT_FORMAT', 'image_newline and view_seperator differ in size');
    this.newline = newline;
    this.separator = separator;
    this.globalViewPos = globalViewPos;
  }

  /**
   * Read `image_newline` and `view_seperator` [n_embed] and check the top-level config keys
   * `tile_tag` (only "2D") and `global_view_pos`.
   */
  static async load(src: WeightSource, config: { tile_tag?: unknown; global_view_pos?: unknown }, nEmbed: number, prefix = ''): Promise<ImageTokenLayout> {
    const tag = config.tile_tag ?? '2D';
    if (tag !== '2D') throw new KestrelError('E_UNSUPPORTED', `tile_tag "${String(tag)}" is not supported (DeepSeek-VL2 releases use "2D")`);
    const pos = config.global_view_pos ?? 'head';
    if (pos !== 'head' && pos !== 'tail') throw new KestrelError('E_CHECKPOINT_FORMAT', `global_view_pos must be "head" or "tail", got ${JSON.stringify(pos)}`);
    const read = async (name: string): Promise<Float32Array> => {
      const full = prefix + name;
      if (!src.has(full)) throw new KestrelError('E_CHECKPOINT_FORMAT', `checkpoint is missing tensor "${full}"`, { details: { tensor: full } });
      const t = await src.read(full);
      if (t.size !== nEmbed) throw new KestrelError('E_CHECKPOINT_FORMAT', `tensor "${full}" has ${t.size} values, expected n_embed = ${nEmbed}`);
      const f = t.toF32().data;
      return f === t.data ? f.slice() : f;
    };
    return new ImageTokenLayout(await read('image_newline'), await read('view_seperator'), pos);
  }

  /**
   * Arrange projector output [total tiles, side², E] (per image: global tile, then tw·th local tiles
   * row-major) into one image-token sequence per image, concatenated: [Σ tokens, E].
   */
  arrange(projected: Tensor<'f32'>, crops: readonly SpatialCrop[]): Tensor<'f32'> {
    const [nt, hw, E] = projected.shape;
    if (projected.rank !== 3 || E !== this.newline.length) {
      throw new KestrelError('E_OPTIONS', `projector output must be [tiles, tokens, ${this.newline.length}], got [${projected.shape.join(', ')}]`);
    }
    const side = Math.round(Math.sqrt(hw!));
    if (side * side !== hw) throw new KestrelError('E_OPTIONS', `projector output has ${hw} tokens per tile, not a square grid`);
    let needTiles = 0;
    let total = 0;
    for (const c of crops) {
      needTiles += 1 + c[0] * c[1];
      total += numImageTokens(side, c);
    }
    if (needTiles !== nt) throw new KestrelError('E_IMAGE_TOKENS', `images_spatial_crop describes ${needTiles} tiles but ${nt} were encoded`);
    const e = E!;
    const src = projected.data;
    const out = new Float32Array(total * e);
    let o = 0;
    const put = (v: Float32Array | number): void => {
      if (typeof v === 'number') out.set(src.subarray(v, v + e), o);
      else out.set(v, o);
      o += e;
    };
    let tile = 0;
    for (const [tw, th] of crops) {
      const g = tile;
      const global = (): void => {
        for (let r = 0; r < side; r++) {
          for (let c = 0; c < side; c++) put((g * hw! + r * side + c) * e);
          put(this.newline);
        }
      };
      const local = (): void => {
        for (let tr = 0; tr < th; tr++) {
          for (let r = 0; r < side; r++) {
            for (let tc = 0; tc < tw; tc++) {
              const t = g + 1 + tr * tw + tc;
              for (let c = 0; c < side; c++) put((t * hw! + r * side + c) * e);
            }
            put(this.newline);
          }
        }
      };
      if (this.globalViewPos === 'head') { global(); put(this.separator); local(); }
      else { local(); put(this.separator); global(); }
      tile += 1 + tw * th;
    }
    return new Tensor('f32', [total, e], out);
  }
}
