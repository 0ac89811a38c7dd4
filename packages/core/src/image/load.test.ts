import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KestrelError } from '../errors.js';
import { loadImage } from './load.js';

// --- a minimal PNG writer, so the fixtures (incl. a 30000x30000 header) are made by hand, not by sharp ---
const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC[(c ^ x) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Buffer {
  const t = Buffer.from(type, 'ascii');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([t, data])));
  return Buffer.concat([len, t, data, crc]);
}
/** PNG from already-filtered scanlines (each row: filter byte 0 + samples). */
function png(w: number, h: number, depth: number, colourType: number, rows: Uint8Array, extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colourType;
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), ...extra,
    chunk('IDAT', deflateSync(rows)), chunk('IEND', new Uint8Array(0)),
  ]);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<KestrelError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(KestrelError);
  expect((e as KestrelError).code).toBe(code);
  return e as KestrelError;
}

let dir = '';
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kestrel-core-img-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('loadImage', () => {
  it('applies EXIF orientation (JPEG, orientation 6 = rotate 90° clockwise)', async () => {
    // 8x4 stored image: left half red, right half blue
    const raw = Buffer.alloc(8 * 4 * 3);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 8; x++) raw[(y * 8 + x) * 3 + (x < 4 ? 0 : 2)] = 255;
    const jpg = await sharp(raw, { raw: { width: 8, height: 4, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(jpg).metadata()).orientation).toBe(6);
    const file = join(dir, 'rotated.jpg');
    await writeFile(file, jpg);
    const img = await loadImage(file);
    expect([img.width, img.height, img.channels]).toEqual([4, 8, 3]);
    const px = (x: number, y: number) => Array.from(img.data.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3));
    // after a clockwise quarter turn the stored left (red) half is on top, blue at the bottom
    expect(px(1, 1)[0]).toBeGreaterThan(200);
    expect(px(1, 1)[2]).toBeLessThan(50);
    expect(px(2, 6)[2]).toBeGreaterThan(200);
    expect(px(2, 6)[0]).toBeLessThan(50);
    const asStored = await loadImage(file, { autoOrient: false });
    expect([asStored.width, asStored.height]).toEqual([8, 4]);
  });

  it('flattens alpha onto the background colour (default white)', async () => {
    // pixel 0 fully transparent black, pixel 1 half-transparent red, pixel 2 opaque green
    const rows = Uint8Array.from([0, 0, 0, 0, 0, 255, 0, 0, 128, 0, 255, 0, 255]);
    const file = png(3, 1, 8, 6, rows);
    const white = await loadImage(file);
    expect(white.channels).toBe(3);
    expect(Array.from(white.data.subarray(0, 3))).toEqual([255, 255, 255]);
    const [r, g, b] = Array.from(white.data.subarray(3, 6));
    expect(r).toBe(255);
    expect(Math.abs(g! - 127)).toBeLessThanOrEqual(1);
    expect(Math.abs(b! - 127)).toBeLessThanOrEqual(1);
    expect(Array.from(white.data.subarray(6, 9))).toEqual([0, 255, 0]);
    const black = await loadImage(file, { background: 0 });
    expect(Array.from(black.data.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(Math.abs(black.data[3]! - 128)).toBeLessThanOrEqual(1);
    const custom = await loadImage(file, { background: [10, 20, 30] });
    expect(Array.from(custom.data.subarray(0, 3))).toEqual([10, 20, 30]);
  });

  it('grayscale PNG: gray mode keeps the values, rgb mode replicates them', async () => {
    const vals = [0, 1, 17, 100, 128, 200, 254, 255];
    const file = png(8, 1, 8, 0, Uint8Array.from([0, ...vals]));
    const g = await loadImage(file, { mode: 'gray' });
    expect(g.channels).toBe(1);
    expect(Array.from(g.data)).toEqual(vals);
    const rgb = await loadImage(file);
    expect(Array.from(rgb.data)).toEqual(vals.flatMap((v) => [v, v, v]));
  });

  it('gray mode on colour input uses the ITU-R 601-2 luma of Pillow convert("L")', async () => {
    const file = png(3, 1, 8, 2, Uint8Array.from([0, 255, 0, 0, 0, 255, 0, 0, 0, 255]));
    const g = await loadImage(file, { mode: 'gray' });
    // (r*19595 + g*38470 + b*7471 + 0x8000) >> 16
    expect(Array.from(g.data)).toEqual([76, 150, 29]);
  });

  it('16-bit RGB and gray PNG become 8-bit (high byte, as Pillow), not clipped', async () => {
    const v16 = [0x12ff, 0x8000, 0xffff, 0x00ff, 0x7f01, 0x0000];
    const rows = Buffer.alloc(1 + v16.length * 2);
    v16.forEach((v, i) => rows.writeUInt16BE(v, 1 + 2 * i));
    const rgb = await loadImage(png(2, 1, 16, 2, rows));
    expect(Array.from(rgb.data)).toEqual(v16.map((v) => v >> 8));
    const gray = await loadImage(png(6, 1, 16, 0, rows), { mode: 'gray' });
    expect(Array.from(gray.data)).toEqual(v16.map((v) => v >> 8));
  });

  it('16-bit RGBA and 8-bit gray+alpha flatten onto an 8-bit background correctly', async () => {
    // px0 transparent, px1 opaque (0x1234, 0x8000, 0xffff), px2 red at half alpha
    const v = [0, 0, 0, 0, 0x1234, 0x8000, 0xffff, 0xffff, 0xffff, 0, 0, 0x8000];
    const rows = Buffer.alloc(1 + v.length * 2);
    v.forEach((x, i) => rows.writeUInt16BE(x, 1 + 2 * i));
    const img = await loadImage(png(3, 1, 16, 6, rows), { background: [10, 20, 30] });
    expect(Array.from(img.data.subarray(0, 6))).toEqual([10, 20, 30, 0x12, 0x80, 0xff]);
    const half = Array.from(img.data.subarray(6, 9));
    [132, 10, 15].forEach((want, c) => expect(Math.abs(half[c]! - want)).toBeLessThanOrEqual(1));
    const ga = await loadImage(png(2, 1, 8, 4, Uint8Array.from([0, 100, 0, 100, 255])), { mode: 'gray', background: 7 });
    expect(Array.from(ga.data)).toEqual([7, 100]);
  });

  it('palette PNG (with tRNS) decodes to RGB', async () => {
    const plte = chunk('PLTE', Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255]));
    const trns = chunk('tRNS', Uint8Array.from([255, 255, 0])); // entry 2 fully transparent
    const img = await loadImage(png(3, 1, 8, 3, Uint8Array.from([0, 0, 1, 2]), [plte, trns]), { background: 50 });
    expect(Array.from(img.data)).toEqual([255, 0, 0, 0, 255, 0, 50, 50, 50]);
  });

  it('CMYK JPEG is converted to sRGB', async () => {
    const jpg = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 220, g: 30, b: 30 } } }).toColourspace('cmyk').jpeg().toBuffer();
    expect((await sharp(jpg).metadata()).space).toBe('cmyk');
    const img = await loadImage(jpg);
    expect(img.channels).toBe(3);
    const [r, g, b] = Array.from(img.data.subarray(0, 3));
    expect(r).toBeGreaterThan(190);
    expect(g).toBeLessThan(70);
    expect(b).toBeLessThan(70);
  });

  it('accepts a Uint8Array and a sharp instance', async () => {
    const buf = png(2, 1, 8, 2, Uint8Array.from([0, 1, 2, 3, 4, 5, 6]));
    expect(Array.from((await loadImage(new Uint8Array(buf))).data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from((await loadImage(sharp(buf))).data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('truncated JPEG -> E_IMAGE_DECODE', async () => {
    const noise = Buffer.alloc(64 * 64 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
    const jpg = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    expect((await loadImage(jpg)).width).toBe(64);
    for (const frac of [0.5, 0.95]) {
      const e = await expectCode(loadImage(jpg.subarray(0, Math.floor(jpg.length * frac))), 'E_IMAGE_DECODE');
      expect(e.message).toMatch(/premature end|truncated|cannot decode/i);
    }
  });

  it('undecodable input -> E_IMAGE_DECODE; missing file -> E_IO; bad options -> E_OPTIONS', async () => {
    await expectCode(loadImage(Buffer.from('this is not an image at all')), 'E_IMAGE_DECODE');
    await expectCode(loadImage(new Uint8Array(0)), 'E_IMAGE_DECODE');
    // a PNG whose IDAT is cut off mid-stream
    const ok = png(16, 16, 8, 2, new Uint8Array(16 * (1 + 48)).map((_, i) => i % 49 === 0 ? 0 : (i * 31) % 256));
    await expectCode(loadImage(ok.subarray(0, ok.length - 30)), 'E_IMAGE_DECODE');
    await expectCode(loadImage(join(dir, 'nope.png')), 'E_IO');
    await expectCode(loadImage(ok, { maxPixels: -1 } as never), 'E_OPTIONS');
    await expectCode(loadImage(ok, { mode: 'cmyk' } as never), 'E_OPTIONS');
  });

  it('30000x30000 PNG -> E_IMAGE_TOO_LARGE from the header, without allocating it', async () => {
    const bomb = png(30000, 30000, 8, 2, new Uint8Array(64));
    expect(bomb.length).toBeLessThan(200);
    const before = process.memoryUsage().rss;
    const e = await expectCode(loadImage(bomb), 'E_IMAGE_TOO_LARGE');
    expect(e.message).toContain('30000x30000');
    // decoding would need 2.7 GB; the check must not come anywhere near that
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it('the pixel limit is configurable', async () => {
    const img = png(20, 10, 8, 0, new Uint8Array(10 * 21));
    await expectCode(loadImage(img, { maxPixels: 199 }), 'E_IMAGE_TOO_LARGE');
    expect((await loadImage(img, { maxPixels: 200 })).width).toBe(20);
  });
});
