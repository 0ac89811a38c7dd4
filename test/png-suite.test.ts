// Corrupt PNGs are refused with E_IMAGE_DECODE before any verdict; valid odd PNGs still decode. The
// files are written byte by byte by scripts/make-png-suite.mjs (see test/fixtures/png-suite/README.md).
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { KestrelError, checkPngImageData, checkPngStructure, loadImage } from '@kestrel/core';
import { qcTestModel } from './helpers/qc-model.js';
import { expectKestrelError, runKestrel as kestrel } from './helpers/cli.js';

const DIR = resolve(import.meta.dirname, 'fixtures/png-suite');
const MANIFEST = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as Record<string, { expect: 'ok' | 'corrupt'; damage: string }>;
const CORRUPT = Object.keys(MANIFEST).filter((n) => MANIFEST[n]!.expect === 'corrupt');
const VALID = Object.keys(MANIFEST).filter((n) => MANIFEST[n]!.expect === 'ok');
const M = qcTestModel();

const refusal = (p: Promise<unknown>): Promise<KestrelError> => expectKestrelError(p, 'E_IMAGE_DECODE');

/** The reference decode of a non-interlaced 8-bit gray/RGB fixture: inflate and un-filter (filter 0 only). */
function referencePixels(bytes: Buffer, channels: number): Uint8Array {
  const w = bytes.readUInt32BE(16), h = bytes.readUInt32BE(20);
  const idat: Buffer[] = [];
  for (let at = 8; at < bytes.length; at += 12 + bytes.readUInt32BE(at)) if (bytes.toString('latin1', at + 4, at + 8) === 'IDAT') idat.push(bytes.subarray(at + 8, at + 8 + bytes.readUInt32BE(at)));
  const raw = inflateSync(Buffer.concat(idat));
  const out = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) out.set(raw.subarray(y * (1 + w * channels) + 1, (y + 1) * (1 + w * channels)), y * w * channels);
  return out;
}

describe('PNG integrity check (loadImage)', () => {
  it('has at least 25 corrupt and 8 valid fixtures', () => {
    expect(CORRUPT.length).toBeGreaterThanOrEqual(25);
    expect(VALID.length).toBeGreaterThanOrEqual(8);
  });

  it.each(CORRUPT)('refuses %s (by path and as bytes)', async (name) => {
    const e = await refusal(loadImage(join(DIR, name)));
    expect(e.message).toContain('corrupt PNG');
    expect(e.message).toContain(name);
    await refusal(loadImage(readFileSync(join(DIR, name))));
  });

  it('names what is wrong', async () => {
    const msg = async (n: string): Promise<string> => (await refusal(loadImage(join(DIR, n)))).message;
    expect(await msg('x-crc-idat.png')).toMatch(/chunk IDAT at byte \d+ has CRC/);
    expect(await msg('x-crc-text.png')).toMatch(/chunk tEXt at byte \d+ has CRC/);
    expect(await msg('x-adler.png')).toMatch(/Adler-32/);
    expect(await msg('x-no-iend.png')).toMatch(/no IEND/);
    expect(await msg('x-sig-q.png')).toMatch(/bad signature \(byte 1/);
    expect(await msg('x-first-not-ihdr.png')).toMatch(/first chunk is tEXt, not IHDR/);
    expect(await msg('x-len-huge.png')).toMatch(/length 2147483649/);
    expect(await msg('x-len-idat-long.png')).toMatch(/length is probably wrong/);
    expect(await msg('x-len-idat-short.png')).toMatch(/length is probably wrong/);
    expect(await msg('x-crc-idat.png')).not.toMatch(/length/);
    expect(await msg('x-zlib-short.png')).toMatch(/inflates to 2716 bytes where IHDR gives 3104/); // 28 rows x 97 vs 32 x 97
  });

  it("checks the zlib checksum even at failOn: 'truncated'", async () => {
    expect((await refusal(loadImage(join(DIR, 'x-adler.png'), { failOn: 'truncated' }))).message).toMatch(/Adler-32/);
  });

  it.each(VALID)('still decodes %s', async (name) => {
    const bytes = readFileSync(join(DIR, name));
    const img = await loadImage(join(DIR, name));
    expect([img.width, img.height]).toEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)]);
  });

  it('decodes the valid files to the pixels they hold (hand-made reference decode)', async () => {
    const rgb = readFileSync(join(DIR, 'ok-rgb8.png'));
    expect(Buffer.from((await loadImage(rgb)).data)).toEqual(Buffer.from(referencePixels(rgb, 3)));
    // The interlaced file holds the same 32x32 picture as ok-rgb8 (the generator uses one pixel function).
    expect(Buffer.from((await loadImage(join(DIR, 'ok-interlaced.png'))).data)).toEqual(Buffer.from(referencePixels(rgb, 3)));
    expect(Buffer.from((await loadImage(join(DIR, 'ok-split-idat.png'))).data)).toEqual(Buffer.from(referencePixels(rgb, 3)));
    expect(Buffer.from((await loadImage(join(DIR, 'ok-extra-rows-in-idat.png'))).data)).toEqual(Buffer.from(referencePixels(rgb, 3)));
    const one = await loadImage(join(DIR, 'ok-1x1.png'), { mode: 'gray' });
    expect(Array.from(one.data)).toEqual([77]);
  });

  it('accepts the third-party PNGs among the fixtures (ELPV, PneumoniaMNIST, VLM images)', async () => {
    const dirs = ['qc/elpv/images', 'qc/pneumoniamnist/images', 'vlm/A', 'vlm/B'].map((d) => resolve(import.meta.dirname, 'fixtures', d));
    let n = 0;
    for (const d of dirs) {
      for (const f of readdirSync(d).filter((x) => x.endsWith('.png'))) {
        await checkPngImageData(checkPngStructure(readFileSync(join(d, f)), f), f);
        n++;
      }
    }
    expect(n).toBeGreaterThan(20);
  });
});

describe.skipIf(M.skip !== false)(`kestrel inspect on the PNG suite (${M.skip || M.model})`, () => {
  it('refuses every corrupt PNG with E_IMAGE_DECODE and exit 1, no verdict printed', async () => {
    for (const name of CORRUPT) {
      const r = await kestrel(['inspect', '--model', M.model!, '--json', join(DIR, name)]);
      expect(r.code, name).toBe(1);
      expect(r.err, name).toMatch(/^kestrel: E_IMAGE_DECODE: .*corrupt PNG/);
      expect(r.out, name).toBe('');
    }
  }, 600_000);

  it('inspects every valid odd PNG', async () => {
    const r = await kestrel(['inspect', '--model', M.model!, '--json', ...VALID.map((n) => join(DIR, n))]);
    expect(r.code, r.err).toBe(0);
    const rows = JSON.parse(r.out) as { image: string; defective: boolean; score: number }[];
    expect(rows.map((x) => x.image)).toEqual(VALID.map((n) => join(DIR, n)));
    for (const x of rows) expect(Number.isFinite(x.score)).toBe(true);
  }, 120_000);
});
