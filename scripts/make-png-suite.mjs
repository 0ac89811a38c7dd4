#!/usr/bin/env node
// Writes test/fixtures/png-suite/: small PNGs made byte by byte (node:zlib only, no image library), in
// the spirit of PngSuite's x*.png family: valid odd files that must still decode, and corrupt ones
// (bad CRCs, lengths, signatures, chunk order, missing IEND, truncation, bad zlib Adler-32) that must be
// refused. manifest.json says, for each file, whether it is valid and what was damaged.
// Run: node scripts/make-png-suite.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'png-suite');
const SIG = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);

function u32(n) { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; }
function chunk(type, data = Buffer.alloc(0)) {
  const t = Buffer.from(type, 'latin1');
  return Buffer.concat([u32(data.length), t, data, u32(crc32(data, crc32(t)))]);
}
function ihdr(w, h, depth, colour, interlace = 0) {
  return chunk('IHDR', Buffer.concat([u32(w), u32(h), Buffer.from([depth, colour, 0, 0, interlace])]));
}
/** Filtered scanlines (filter 0) of a w×h image whose sample bytes come from `px(x, y)` (an array of bytes). */
function scanlines(w, h, px, x0 = 0, y0 = 0, dx = 1, dy = 1) {
  const rows = [];
  for (let y = y0; y < h; y += dy) {
    const row = [0];
    for (let x = x0; x < w; x += dx) row.push(...px(x, y));
    rows.push(Buffer.from(row));
  }
  return Buffer.concat(rows);
}
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
function adam7(w, h, px) {
  return Buffer.concat(ADAM7.filter(([x0, y0]) => w > x0 && h > y0).map(([x0, y0, dx, dy]) => scanlines(w, h, px, x0, y0, dx, dy)));
}
const W = 32, H = 32;
const rgb = (x, y) => [x * 8, y * 8, 255 - x * 4];
const plain = (extra = []) => Buffer.concat([SIG, ihdr(W, H, 8, 2), ...extra, chunk('IDAT', deflateSync(scanlines(W, H, rgb))), chunk('IEND')]);
/** Offset of the first chunk of `type` in `png`. */
function find(png, type) {
  for (let at = 8; at + 8 <= png.length; at += 12 + png.readUInt32BE(at)) if (png.toString('latin1', at + 4, at + 8) === type) return at;
  throw new Error(`no ${type}`);
}
function flip(png, offset) { const b = Buffer.from(png); b[offset] ^= 0x01; return b; }

const files = {};
function add(name, bytes, expect, damage) { files[name] = { bytes, expect, damage }; }

// --- valid odd files ---------------------------------------------------------------------------------
add('ok-rgb8.png', plain(), 'ok', '32x32 RGB, 8 bits');
add('ok-gray16.png', Buffer.concat([SIG, ihdr(W, H, 16, 0), chunk('IDAT', deflateSync(scanlines(W, H, (x, y) => { const v = (x * 2048 + y * 31) & 0xffff; return [v >> 8, v & 255]; }))), chunk('IEND')]), 'ok', '16-bit grayscale');
add('ok-rgba16.png', Buffer.concat([SIG, ihdr(W, H, 16, 6), chunk('IDAT', deflateSync(scanlines(W, H, (x, y) => [x * 8, 0, y * 8, 0, 128, 0, 255, 255]))), chunk('IEND')]), 'ok', '16-bit RGBA');
add('ok-interlaced.png', Buffer.concat([SIG, ihdr(W, H, 8, 2, 1), chunk('IDAT', deflateSync(adam7(W, H, rgb))), chunk('IEND')]), 'ok', 'Adam7 interlaced RGB');
add('ok-interlaced-3x5.png', Buffer.concat([SIG, ihdr(3, 5, 8, 0, 1), chunk('IDAT', deflateSync(adam7(3, 5, (x, y) => [x * 80 + y]))), chunk('IEND')]), 'ok', 'Adam7 interlaced, 3x5 (empty passes)');
const palette = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0]);
add('ok-palette-trns.png', Buffer.concat([SIG, ihdr(W, H, 4, 3), chunk('PLTE', palette), chunk('tRNS', Buffer.from([255, 128, 0])), chunk('IDAT', deflateSync(scanlines(W, H / 1, (x, y) => (x % 2 ? [] : [(((x + y) % 4) << 4) | ((x + 1 + y) % 4)])))), chunk('IEND')]), 'ok', '4-bit palette with tRNS');
add('ok-1x1.png', Buffer.concat([SIG, ihdr(1, 1, 8, 0), chunk('IDAT', deflateSync(Buffer.from([0, 77]))), chunk('IEND')]), 'ok', '1x1 grayscale');
add('ok-gray1.png', Buffer.concat([SIG, ihdr(W, H, 1, 0), chunk('IDAT', deflateSync(scanlines(W, H, (x, y) => (x % 8 ? [] : [y % 2 ? 0xaa : 0x55])))), chunk('IEND')]), 'ok', '1-bit grayscale');
{
  const z = deflateSync(scanlines(W, H, rgb));
  const parts = [];
  for (let i = 0; i < z.length; i += 100) parts.push(chunk('IDAT', z.subarray(i, i + 100)));
  add('ok-split-idat.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('tEXt', Buffer.from('Comment\0made for Kestrel', 'latin1')), ...parts, chunk('IEND')]), 'ok', 'IDAT split into 100-byte chunks, a tEXt chunk');
}
// Every declared row is there and the checksums hold; the surplus is ignored (libpng: a benign error).
add('ok-extra-rows-in-idat.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('IDAT', deflateSync(scanlines(W, H + 4, rgb))), chunk('IEND')]), 'ok', 'zlib data holds 4 rows more than IHDR declares (ignored, as by libpng)');
add('ok-trailing-after-iend.png', Buffer.concat([plain(), Buffer.from('junk')]), 'ok', 'bytes after IEND (ignored, as by libpng)');

// --- corrupt files -----------------------------------------------------------------------------------
const base = plain([chunk('tEXt', Buffer.from('Title\0part 17', 'latin1'))]);
const at = (t) => find(base, t);
add('x-crc-ihdr.png', flip(base, at('IHDR') + 8 + 13), 'corrupt', 'IHDR CRC changed');
add('x-crc-idat.png', flip(base, at('IDAT') + 8 + base.readUInt32BE(at('IDAT'))), 'corrupt', 'IDAT CRC changed');
add('x-crc-text.png', flip(base, at('tEXt') + 8 + base.readUInt32BE(at('tEXt'))), 'corrupt', 'tEXt (ancillary) CRC changed');
add('x-crc-iend.png', flip(base, base.length - 1), 'corrupt', 'IEND CRC changed');
add('x-data-idat.png', flip(base, at('IDAT') + 8 + 40), 'corrupt', 'a byte inside IDAT changed, CRC left as it was');
{ const b = Buffer.from(base); b.writeUInt32BE(b.readUInt32BE(at('IDAT')) + 5, at('IDAT')); add('x-len-idat-long.png', b, 'corrupt', 'IDAT length 5 too large'); }
{ const b = Buffer.from(base); b.writeUInt32BE(b.readUInt32BE(at('IDAT')) - 5, at('IDAT')); add('x-len-idat-short.png', b, 'corrupt', 'IDAT length 5 too small'); }
{ const b = Buffer.from(base); b.writeUInt32BE(0x80000001, at('tEXt')); add('x-len-huge.png', b, 'corrupt', 'tEXt length over 2^31-1'); }
{ const b = Buffer.from(base); b.writeUInt32BE(1000000, at('IDAT')); add('x-len-past-end.png', b, 'corrupt', 'IDAT length points past the end of the file'); }
{ const b = Buffer.from(base); b[0] = 0x09; add('x-sig-7bit.png', b, 'corrupt', 'signature byte 0 with its top bit cleared (7-bit transfer)'); }
{ const b = Buffer.from(base); b[1] = 0x51; add('x-sig-q.png', b, 'corrupt', "signature 'PNG' changed to 'QNG'"); }
add('x-sig-cr-added.png', Buffer.concat([base.subarray(0, 4), Buffer.from([13]), base.subarray(4)]), 'corrupt', 'a CR added to the signature (text-mode transfer)');
add('x-sig-lf-dropped.png', Buffer.concat([base.subarray(0, 6), base.subarray(7)]), 'corrupt', 'the signature LF dropped');
add('x-no-iend.png', base.subarray(0, base.length - 12), 'corrupt', 'IEND missing');
add('x-trunc-idat.png', base.subarray(0, at('IDAT') + 30), 'corrupt', 'truncated inside IDAT');
add('x-trunc-iend.png', base.subarray(0, base.length - 2), 'corrupt', 'truncated inside the IEND CRC');
add('x-trunc-sig.png', base.subarray(0, 6), 'corrupt', 'only 6 bytes of signature');
{
  const z = Buffer.from(deflateSync(scanlines(W, H, rgb)));
  z[z.length - 1] ^= 0xff; // last byte of the Adler-32
  add('x-adler.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('IDAT', z), chunk('IEND')]), 'corrupt', 'zlib Adler-32 wrong, IDAT CRC right');
}
add('x-zlib-short.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('IDAT', deflateSync(scanlines(W, H - 4, rgb))), chunk('IEND')]), 'corrupt', 'image data 4 rows short, zlib stream sound');
add('x-zlib-garbage.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('IDAT', Buffer.from('this is not a zlib stream at all')), chunk('IEND')]), 'corrupt', 'IDAT is not zlib data');
add('x-first-not-ihdr.png', Buffer.concat([SIG, chunk('tEXt', Buffer.from('a\0b')), base.subarray(8)]), 'corrupt', 'tEXt before IHDR');
add('x-no-idat.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('IEND')]), 'corrupt', 'no IDAT');
add('x-ihdr-colour1.png', Buffer.concat([SIG, ihdr(W, H, 8, 1), chunk('IDAT', deflateSync(scanlines(W, H, (x) => [x]))), chunk('IEND')]), 'corrupt', 'IHDR colour type 1');
add('x-ihdr-depth3.png', Buffer.concat([SIG, ihdr(W, H, 3, 0), chunk('IDAT', deflateSync(scanlines(W, H, (x) => [x]))), chunk('IEND')]), 'corrupt', 'IHDR bit depth 3');
add('x-palette-no-plte.png', Buffer.concat([SIG, ihdr(W, H, 8, 3), chunk('IDAT', deflateSync(scanlines(W, H, () => [0]))), chunk('IEND')]), 'corrupt', 'palette image without PLTE');
{
  const z = deflateSync(scanlines(W, H, rgb));
  add('x-idat-split-by-text.png', Buffer.concat([SIG, ihdr(W, H, 8, 2), chunk('IDAT', z.subarray(0, 50)), chunk('tEXt', Buffer.from('a\0b')), chunk('IDAT', z.subarray(50)), chunk('IEND')]), 'corrupt', 'IDAT chunks not consecutive');
}

mkdirSync(OUT, { recursive: true });
const manifest = {};
for (const [name, f] of Object.entries(files)) {
  writeFileSync(join(OUT, name), f.bytes);
  manifest[name] = { expect: f.expect, damage: f.damage };
}
writeFileSync(join(OUT, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`wrote ${Object.keys(files).length} files to ${OUT}`);
