import { describe, expect, it } from 'vitest';
import { KestrelError, openSafetensors } from '../index.js';
import { loadImage, rgbToLuma } from './load.js';
import { containSize, padToSize, pythonRound } from './pad.js';
import { resizeBicubicPillow, bicubicCoefficients } from './resize.js';
import { selectBestResolution } from './resolution.js';
import { cropImage, cropTiles } from './tiles.js';
import { toChwNormalized } from './normalize.js';
import type { PixelImage } from './types.js';

const PILLOW = new URL('../../../../test/fixtures/core/pillow/pillow_cases.safetensors', import.meta.url).pathname;

interface Case { op: 'resize' | 'pad' | 'luma' | 'decode'; input: string; output: string; width?: number; height?: number; fill?: number[] }

function asImage(data: Uint8Array, shape: number[]): PixelImage {
  return { data, height: shape[0]!, width: shape[1]!, channels: shape[2] as 1 | 3 };
}

describe('Pillow 9.4.0 cross-check: resize, pad, luma, JPEG decode (fixtures made by test/fixtures/core/pillow/make_pillow_cases.py)', async () => {
  const f = await openSafetensors(PILLOW);
  const cases = JSON.parse(f.metadata().cases!) as Case[];
  const tensors = new Map<string, PixelImage>();
  const jpegs = new Map<string, Uint8Array>();
  for (const n of f.names()) {
    const t = await f.read(n);
    if (t.shape.length === 1) jpegs.set(n, t.data as Uint8Array);
    else tensors.set(n, asImage(t.data as Uint8Array, t.shape));
  }
  await f.close();

  it('has the cases the generator wrote', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    expect(new Set(cases.map((c) => c.op))).toEqual(new Set(['resize', 'pad', 'luma', 'decode']));
  });

  it.each(cases.map((c, i) => [i, c] as const))('case %i is bit-identical', async (_i, c) => {
    const src = tensors.get(c.input)!;
    const want = tensors.get(c.output)!;
    let got: PixelImage;
    // JPEG: sharp's libjpeg-turbo decode (with EXIF orientation) equals Pillow's on these files
    if (c.op === 'decode') got = await loadImage(jpegs.get(c.input)!);
    else if (c.op === 'resize') got = resizeBicubicPillow(src, c.width!, c.height!);
    else if (c.op === 'pad') got = padToSize(src, c.width!, c.height!, c.fill!);
    else got = { data: rgbToLuma(src.data, src.width * src.height), width: src.width, height: src.height, channels: 1 };
    expect([got.height, got.width, got.channels]).toEqual([want.height, want.width, want.channels]);
    expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
  });
});

describe('resize / pad helpers', () => {
  const ramp: PixelImage = { data: Uint8Array.from({ length: 6 * 4 * 3 }, (_, i) => (i * 37) % 256), width: 6, height: 4, channels: 3 };

  it('same size returns an equal copy, not the same buffer', () => {
    const r = resizeBicubicPillow(ramp, 6, 4);
    expect(r.data).not.toBe(ramp.data);
    expect(Buffer.from(r.data).equals(Buffer.from(ramp.data))).toBe(true);
  });

  it('a constant image stays constant at any scale (weights sum to 2^22 after rounding)', () => {
    const flat: PixelImage = { data: new Uint8Array(9 * 7 * 3).fill(200), width: 9, height: 7, channels: 3 };
    for (const [w, h] of [[1, 1], [3, 2], [40, 31], [9, 100]] as const) {
      expect(resizeBicubicPillow(flat, w, h).data.every((v) => v === 200)).toBe(true);
    }
  });

  it('1-channel and 3-channel paths agree channel by channel', () => {
    const rgb = resizeBicubicPillow(ramp, 13, 3);
    for (let c = 0; c < 3; c++) {
      const plane: PixelImage = { data: ramp.data.filter((_, i) => i % 3 === c), width: 6, height: 4, channels: 1 };
      const g = resizeBicubicPillow(plane, 13, 3);
      expect(Array.from(g.data)).toEqual(Array.from(rgb.data.filter((_, i) => i % 3 === c)));
    }
  });

  it('coefficient rows are cached and span the documented support', () => {
    const a = bicubicCoefficients(100, 10);
    expect(bicubicCoefficients(100, 10)).toBe(a);
    expect(a.ksize).toBe(Math.ceil(2 * 10) * 2 + 1);
    for (let i = 0; i < 10; i++) {
      let s = 0;
      for (let k = 0; k < a.count[i]!; k++) s += a.weights[i * a.ksize + k]!;
      expect(Math.abs(s - (1 << 22))).toBeLessThanOrEqual(a.count[i]!);
    }
  });

  it('rejects bad sizes and malformed images with E_OPTIONS', () => {
    expect(() => resizeBicubicPillow(ramp, 0, 4)).toThrow(KestrelError);
    expect(() => resizeBicubicPillow(ramp, 2.5, 4)).toThrow(/positive integer/);
    expect(() => resizeBicubicPillow({ ...ramp, data: new Uint8Array(5) }, 2, 2)).toThrow(/Uint8Array of/);
    expect(() => padToSize(ramp, 4, 4, [1, 2])).toThrow(/fill colour/);
  });

  it('pythonRound rounds half to even like Python 3', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 2.5000001, 3].map(pythonRound)).toEqual([0, 2, 2, 0, -2, 2, 3, 3]);
    expect(containSize(8, 5, 4, 4)).toEqual({ width: 4, height: 2 }); // round(2.5) = 2
    expect(containSize(5, 8, 4, 4)).toEqual({ width: 2, height: 4 });
    expect(containSize(10, 10, 7, 3)).toEqual({ width: 3, height: 3 });
  });
});

describe('tiles and normalisation', () => {
  const img: PixelImage = { data: Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => i + 1), width: 5, height: 3, channels: 3 };

  it('cropTiles is row-major and zero-fills edge tiles like Pillow crop', () => {
    const tiles = cropTiles(img, 2, 2);
    expect(tiles.length).toBe(3 * 2);
    // tile (row 0, col 1) starts at pixel (2, 0)
    expect(Array.from(tiles[1]!.data.subarray(0, 3))).toEqual(Array.from(img.data.subarray(6, 9)));
    // tile (row 1, col 2): only pixel (4, 2) exists
    const last = tiles[5]!;
    expect(Array.from(last.data.subarray(0, 3))).toEqual(Array.from(img.data.subarray((2 * 5 + 4) * 3, (2 * 5 + 4) * 3 + 3)));
    expect(last.data.subarray(3).every((v) => v === 0)).toBe(true);
    expect(cropImage(img, -1, -1, 2, 2, 9).data.subarray(0, 9).every((v) => v === 9)).toBe(true);
  });

  it('toChwNormalized equals torchvision float32 ToTensor + Normalize', () => {
    const out = toChwNormalized(img, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    const f = Math.fround;
    const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 15; p++) {
        const u = img.data[p * 3 + c]!;
        expect(out[c * 15 + p]).toBe(f(f(f(u / 255) - f(mean[c]!)) / f(std[c]!)));
      }
    }
    // u8 0 and 255 map to exactly -1 and 1 with mean = std = 0.5
    const ends = toChwNormalized({ data: Uint8Array.from([0, 255]), width: 2, height: 1, channels: 1 }, { mean: [0.5], std: [0.5] });
    expect(Array.from(ends)).toEqual([-1, 1]);
  });

  it('writes into a caller array at an offset and checks its size', () => {
    const buf = new Float32Array(3 * 15 + 7);
    toChwNormalized(img, { out: buf, offset: 7 });
    expect(buf[6]).toBe(0);
    expect(buf[7]).toBe(Math.fround(Math.fround(Math.fround(1 / 255) - 0.5) / 0.5));
    expect(() => toChwNormalized(img, { out: new Float32Array(10) })).toThrow(/output array/);
    expect(() => toChwNormalized({ ...img, channels: 1, data: new Uint8Array(15) }, { mean: [0.5, 0.5, 0.5] })).toThrow(/channel/);
  });
});

describe('selectBestResolution', () => {
  const cands: [number, number][] = [[112, 112], [112, 224], [224, 112], [112, 336], [336, 112], [112, 448], [448, 112], [224, 224]];
  it('matches the README worked example and prefers less waste on ties', () => {
    expect(selectBestResolution([150, 90], cands)).toEqual([224, 112]);
    expect(selectBestResolution([72, 120], cands)).toEqual([112, 224]);
    // a tiny image fits every candidate fully: the first with the least waste wins
    expect(selectBestResolution([10, 10], cands)).toEqual([112, 112]);
    expect(selectBestResolution([1000, 1000], cands)).toEqual([224, 224]);
  });
  it('rejects empty or non-positive input', () => {
    expect(() => selectBestResolution([0, 5], cands)).toThrow(KestrelError);
    expect(() => selectBestResolution([5, 5], [])).toThrow(/empty/);
  });
});
