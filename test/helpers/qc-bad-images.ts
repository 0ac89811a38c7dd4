import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A valid-header PNG that claims `w`×`h` gray pixels but carries only a few rows (a decompression bomb's header). */
export function hugePngHeader(w = 50_000, h = 50_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // gray
  const rows = Buffer.alloc((w + 1) * 4); // 4 rows of zeros, filter byte 0
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

/** The first `fraction` of an encoded image. */
export function truncated(bytes: Buffer, fraction = 0.5): Buffer {
  return bytes.subarray(0, Math.floor(bytes.length * fraction));
}

/** A PNG whose compressed pixel data is overwritten with garbage (header intact). */
export async function corruptPng(bytes: Buffer): Promise<Buffer> {
  const png = Buffer.from(await sharp(bytes).png({ compressionLevel: 9 }).toBuffer());
  const idat = png.indexOf(Buffer.from('IDAT'));
  for (let i = idat + 20; i < Math.min(png.length - 16, idat + 400); i++) png[i] = (i * 131) & 0xff;
  return png;
}

/** Bytes that are no image at all. */
export const NOT_AN_IMAGE = Buffer.from('%PDF-1.4 this is not an image, just text pretending\n'.repeat(20));
