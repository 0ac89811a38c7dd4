// Inspection and model inputs are raster images: SVG is refused unless asked for, with an error that
// lists the accepted formats; every listed raster format still decodes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { KestrelError, loadImage } from '@kestrel/core';
import { qcTestModel } from './helpers/qc-model.js';
import { expectKestrelError, runKestrel } from './helpers/cli.js';

const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="4"><rect width="4" height="4" fill="#ff0000"/><rect x="4" width="4" height="4" fill="#0000ff"/></svg>');
const dir = mkdtempSync(join(tmpdir(), 'kestrel-raster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const M = qcTestModel();

const refusal = (p: Promise<unknown>): Promise<KestrelError> => expectKestrelError(p, 'E_IMAGE_DECODE');

describe('raster formats only, by default', () => {
  it('refuses SVG (bytes and file) naming it and listing the accepted formats', async () => {
    const file = join(dir, 'part.svg');
    writeFileSync(file, SVG);
    for (const input of [SVG, file]) {
      const e = await refusal(loadImage(input));
      expect(e.message).toMatch(/is SVG, a vector format; Kestrel accepts raster images in JPEG, PNG, WebP, TIFF, GIF, AVIF/);
      expect(e.message).toContain('allowSvg');
      expect(e.details?.accepted).toEqual(['JPEG', 'PNG', 'WebP', 'TIFF', 'GIF', 'AVIF']);
    }
    // A sharp instance over SVG is refused too: the format is what counts, not how it arrives.
    await refusal(loadImage(sharp(SVG)));
  });

  it('renders SVG with allowSvg: true (left half red, right half blue)', async () => {
    const img = await loadImage(SVG, { allowSvg: true });
    expect([img.width, img.height]).toEqual([8, 4]);
    expect(Array.from(img.data.subarray(0, 3))).toEqual([255, 0, 0]);
    expect(Array.from(img.data.subarray(7 * 3, 8 * 3))).toEqual([0, 0, 255]);
  });

  it('decodes every listed raster format', async () => {
    const raw = Buffer.alloc(8 * 8 * 3, 200);
    const src = sharp(raw, { raw: { width: 8, height: 8, channels: 3 } });
    const encoded = {
      jpeg: await src.clone().jpeg().toBuffer(), png: await src.clone().png().toBuffer(), webp: await src.clone().webp({ lossless: true }).toBuffer(),
      tiff: await src.clone().tiff().toBuffer(), gif: await src.clone().gif().toBuffer(), avif: await src.clone().avif({ lossless: true }).toBuffer(),
    };
    for (const [fmt, bytes] of Object.entries(encoded)) {
      const img = await loadImage(bytes);
      expect([fmt, img.width, img.height]).toEqual([fmt, 8, 8]);
    }
  });
});

describe.skipIf(M.skip !== false)(`kestrel inspect refuses SVG (${M.skip || M.model})`, () => {
  it('exit 1 with E_IMAGE_DECODE listing the formats', async () => {
    const file = join(dir, 'cli.svg');
    writeFileSync(file, SVG);
    const r = await runKestrel(['inspect', '--model', M.model!, file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^kestrel: E_IMAGE_DECODE: .*accepts raster images in JPEG, PNG, WebP, TIFF, GIF, AVIF/);
    expect(r.out).toBe('');
  }, 120_000);
});
