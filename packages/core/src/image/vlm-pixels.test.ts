// The DeepSeek-VL2 preprocessing goldens (Pillow 9.4 + torchvision reference) must come out bit-for-bit.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readAllSafetensors, openSafetensors, type Tensor } from '../index.js';
import { cropTiles, loadImage, padToSize, selectBestResolution, toChwNormalized, type RgbImage } from './index.js';

const FIX = new URL('../../../../test/fixtures/core/vlm-pixels/', import.meta.url);

interface Proc { candidate_resolutions: [number, number][]; image_mean: number[]; image_std: number[] }

/** DeepSeek-VL2 `tokenize_with_images` image path, composed from the core helpers. */
function preprocess(img: RgbImage, proc: Proc, cropping: boolean) {
  const S = proc.candidate_resolutions[0]![0];
  const [bw, bh] = cropping ? selectBestResolution([img.width, img.height], proc.candidate_resolutions) : [S, S];
  const fill = proc.image_mean.map((m) => Math.trunc(m * 255));
  const global = padToSize(img, S, S, fill);
  const local = padToSize(img, bw, bh, fill);
  const tiles = [global, ...cropTiles(local, S)];
  const pixels = new Float32Array(tiles.length * 3 * S * S);
  tiles.forEach((t, i) => toChwNormalized(t, { mean: proc.image_mean, std: proc.image_std, out: pixels, offset: i * 3 * S * S }));
  return { global, local, pixels, crop: [bw / S, bh / S], nTiles: tiles.length, S };
}

function u8(t: Tensor | undefined): Uint8Array {
  if (!t || t.dtype !== 'u8') throw new Error('missing u8 tensor');
  return t.data as Uint8Array;
}

describe.each(['A', 'B', 'C'])('DeepSeek-VL2 pixels, model %s', (model) => {
  const dir = new URL(`${model}/`, FIX);
  const proc = JSON.parse(readFileSync(new URL('processor_config.json', dir), 'utf8')) as Proc;

  it('config and processor_config agree on candidate resolutions', () => {
    const cfg = JSON.parse(readFileSync(new URL('config.json', dir), 'utf8')) as { candidate_resolutions: number[][] };
    expect(cfg.candidate_resolutions).toEqual(proc.candidate_resolutions);
  });

  it.each(['img0', 'img1'])('%s: views, pixel_values and spatial crop are bit-identical', async (name) => {
    const img = await loadImage(new URL(`${name}.png`, dir).pathname);
    const gold = await readAllSafetensors(new URL(`case_${name}.safetensors`, dir).pathname);
    const r = preprocess(img, proc, true);
    const gv = gold.get('image0.global_view_u8')!;
    const lv = gold.get('image0.local_view_u8')!;
    expect([r.global.height, r.global.width, 3]).toEqual(gv.shape);
    expect([r.local.height, r.local.width, 3]).toEqual(lv.shape);
    expect(Buffer.from(r.global.data).equals(Buffer.from(u8(gv)))).toBe(true);
    expect(Buffer.from(r.local.data).equals(Buffer.from(u8(lv)))).toBe(true);
    const pv = gold.get('pixel_values')!;
    expect(pv.shape).toEqual([r.nTiles, 3, r.S, r.S]);
    // Compare the bit patterns, so -0/+0 or NaN payload differences would also show.
    const mine = new Uint32Array(r.pixels.buffer);
    const theirs = new Uint32Array((pv.data as Float32Array).buffer, (pv.data as Float32Array).byteOffset, mine.length);
    let diff = 0;
    for (let i = 0; i < mine.length; i++) if (mine[i] !== theirs[i]) diff++;
    expect(diff).toBe(0);
    expect(Array.from(gold.get('images_spatial_crop')!.data as Int32Array)).toEqual(r.crop);
  });

  it('multi: two images in one prompt concatenate to the golden pixel_values (sha256)', async () => {
    const f = await openSafetensors(new URL('case_multi.safetensors', dir).pathname);
    const meta = f.metadata();
    const crop = Array.from((await f.read('images_spatial_crop')).data as Int32Array);
    const views = await Promise.all([0, 1].flatMap((j) => [f.read(`image${j}.global_view_u8`), f.read(`image${j}.local_view_u8`)]));
    await f.close();
    const imgs = await Promise.all(['img0', 'img1'].map((n) => loadImage(new URL(`${n}.png`, dir).pathname)));
    const rs = imgs.map((im) => preprocess(im, proc, imgs.length <= 2));
    expect(rs.flatMap((r) => r.crop)).toEqual(crop);
    rs.forEach((r, j) => {
      expect(Buffer.from(r.global.data).equals(Buffer.from(u8(views[2 * j])))).toBe(true);
      expect(Buffer.from(r.local.data).equals(Buffer.from(u8(views[2 * j + 1])))).toBe(true);
    });
    const h = createHash('sha256');
    for (const r of rs) h.update(new Uint8Array(r.pixels.buffer));
    expect(h.digest('hex')).toBe(meta.pixel_values_sha256);
  });
});
