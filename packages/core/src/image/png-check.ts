import { promisify } from 'node:util';
import { crc32, inflate } from 'node:zlib';
import { KestrelError } from '../errors.js';

// libvips/libspng (through sharp) decode PNGs with bad chunk CRCs without complaint, so a QC line would
// log a verdict for pixels nobody can vouch for. checkPngStructure is the check sharp skips: the chunk
// structure and CRCs (cheap: one crc32 pass over the file). checkPngImageData inflates the zlib stream
// (which checks its Adler-32 and its length); it costs about a decode, so loadImage runs it only to
// explain a failed decode, and callers that need the verdict without decoding can run it themselves.

const inflateAsync = promisify(inflate);

/** The 8-byte PNG signature. */
export const PNG_SIGNATURE = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

const CRITICAL = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']);
/** Allowed bit depths per colour type (PNG spec, table 11.1). */
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7 passes: [x0, y0, dx, dy]. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

/** What {@link checkPngStructure} found in a PNG whose chunks are sound. */
export interface PngLayout {
  width: number;
  height: number;
  /** The IDAT payloads, in order (views into the input, not copies). */
  idat: Uint8Array[];
  /** Bytes the zlib stream must inflate to (filter bytes included), from IHDR. */
  rawBytes: number;
}

/**
 * True when `bytes` starts like a PNG: the exact signature, or one damaged in a byte or two (a text-mode
 * transfer, a flipped bit) that still names itself PNG or has an IHDR where the first chunk belongs.
 * Such files are checked (and refused) rather than handed to a decoder that might guess.
 */
export function looksLikePng(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return bytes.length >= 4 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  let same = 0;
  for (let i = 0; i < 8; i++) if (bytes[i] === PNG_SIGNATURE[i]) same++;
  if (same >= 5) return true;
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 32)).toString('latin1');
  return head.includes('IHDR') || head.slice(1, 4) === 'PNG';
}

function corrupt(what: string, problem: string, details: Record<string, unknown> = {}): KestrelError {
  return new KestrelError('E_IMAGE_DECODE', `cannot decode image ${what}: corrupt PNG: ${problem}. The file is damaged; re-export or re-capture it.`, {
    details: { input: what, format: 'png', ...details },
  });
}

function rowBytes(width: number, bitsPerPixel: number): number {
  return Math.ceil((width * bitsPerPixel) / 8);
}

/** Size of the filtered scanlines IHDR promises: one filter byte per row, per Adam7 pass if interlaced. */
export function pngRawBytes(width: number, height: number, depth: number, colourType: number, interlaced: boolean): number {
  const bpp = depth * CHANNELS[colourType]!;
  if (!interlaced) return height * (1 + rowBytes(width, bpp));
  let n = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const pw = width > x0 ? Math.ceil((width - x0) / dx) : 0;
    const ph = height > y0 ? Math.ceil((height - y0) / dy) : 0;
    if (pw && ph) n += ph * (1 + rowBytes(pw, bpp));
  }
  return n;
}

function readIhdr(data: Uint8Array, what: string): { width: number; height: number; rawBytes: number; colourType: number } {
  if (data.length !== 13) throw corrupt(what, `IHDR is ${data.length} bytes long, not 13`);
  const v = new DataView(data.buffer, data.byteOffset, 13);
  const width = v.getUint32(0), height = v.getUint32(4);
  const depth = data[8]!, colourType = data[9]!, compression = data[10]!, filter = data[11]!, interlace = data[12]!;
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) throw corrupt(what, `IHDR gives an impossible size ${width}x${height}`);
  const depths = DEPTHS[colourType];
  if (!depths) throw corrupt(what, `IHDR has colour type ${colourType} (allowed: 0, 2, 3, 4, 6)`);
  if (!depths.includes(depth)) throw corrupt(what, `IHDR has bit depth ${depth}, not allowed with colour type ${colourType} (allowed: ${depths.join(', ')})`);
  if (compression !== 0 || filter !== 0) throw corrupt(what, `IHDR has compression method ${compression} and filter method ${filter} (only 0 exists)`);
  if (interlace > 1) throw corrupt(what, `IHDR has interlace method ${interlace} (0 or 1)`);
  return { width, height, colourType, rawBytes: pngRawBytes(width, height, depth, colourType, interlace === 1) };
}

/**
 * Check a PNG's container without inflating anything: the signature, IHDR first and well-formed, every
 * chunk's length inside the file and its CRC-32, chunk types made of letters, no unknown critical
 * chunk, PLTE present for palette images and before IDAT, IDAT chunks consecutive, IEND present and
 * empty. Throws `E_IMAGE_DECODE` naming the first thing wrong (which chunk, at which byte).
 */
export function checkPngStructure(bytes: Uint8Array, what = '<buffer>'): PngLayout {
  for (let i = 0; i < 8; i++) {
    if (bytes[i] !== PNG_SIGNATURE[i]) {
      throw corrupt(what, bytes.length < 8 ? `only ${bytes.length} bytes, shorter than the 8-byte signature` : `bad signature (byte ${i} is 0x${bytes[i]!.toString(16).padStart(2, '0')}, expected 0x${PNG_SIGNATURE[i]!.toString(16).padStart(2, '0')})`);
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let ihdr: { width: number; height: number; rawBytes: number; colourType: number } | undefined;
  let seenPlte = false, idatEnded = false, seenIend = false;
  let at = 8;
  while (at < bytes.length && !seenIend) {
    if (at + 12 > bytes.length) throw corrupt(what, `truncated: ${bytes.length - at} stray byte(s) at byte ${at} where a chunk header belongs`, { offset: at });
    const length = view.getUint32(at);
    const typeBytes = bytes.subarray(at + 4, at + 8);
    const type = Buffer.from(typeBytes.buffer, typeBytes.byteOffset, 4).toString('latin1');
    if (!/^[A-Za-z]{4}$/.test(type)) throw corrupt(what, `chunk at byte ${at} has an invalid type ${JSON.stringify(type)} (a bad length before it, or damage)`, { offset: at });
    if (length > 0x7fffffff) throw corrupt(what, `chunk ${type} at byte ${at} declares length ${length}, over the PNG maximum of 2^31-1`, { offset: at, chunk: type });
    if (at + 12 + length > bytes.length) throw corrupt(what, `truncated: chunk ${type} at byte ${at} declares ${length} data bytes but the file ends ${bytes.length - at - 12} bytes later`, { offset: at, chunk: type });
    const data = bytes.subarray(at + 8, at + 8 + length);
    const stored = view.getUint32(at + 8 + length);
    const actual = crc32(data, crc32(typeBytes));
    if (stored !== actual) {
      // A wrong length also shows up as a CRC mismatch (the CRC is read from the wrong place); say so when
      // no chunk type follows where the length points.
      const next = at + 12 + length;
      const lengthSuspect = next + 8 <= bytes.length ? !/^[A-Za-z]{4}$/.test(Buffer.from(bytes.buffer, bytes.byteOffset + next + 4, 4).toString('latin1')) : next !== bytes.length;
      throw corrupt(what, `chunk ${type} at byte ${at} has CRC 0x${stored.toString(16).padStart(8, '0')} but its bytes give 0x${actual.toString(16).padStart(8, '0')}${lengthSuspect ? ` (and no chunk starts where its length ${length} points, so the length is probably wrong)` : ''}`, { offset: at, chunk: type });
    }
    if (!ihdr && type !== 'IHDR') throw corrupt(what, `the first chunk is ${type}, not IHDR`, { offset: at, chunk: type });
    if (type === 'IHDR') {
      if (ihdr) throw corrupt(what, `a second IHDR at byte ${at}`, { offset: at, chunk: type });
      ihdr = readIhdr(data, what);
    } else if (type === 'IDAT') {
      if (idatEnded) throw corrupt(what, `IDAT at byte ${at} after another chunk ended the image data (IDAT chunks must be consecutive)`, { offset: at, chunk: type });
      idat.push(data);
    } else {
      if (idat.length) idatEnded = true;
      if (type === 'PLTE') {
        if (idat.length) throw corrupt(what, `PLTE at byte ${at} comes after the image data`, { offset: at, chunk: type });
        if (length === 0 || length % 3 !== 0 || length > 768) throw corrupt(what, `PLTE at byte ${at} is ${length} bytes (a multiple of 3, at most 768)`, { offset: at, chunk: type });
        seenPlte = true;
      } else if (type === 'IEND') {
        if (length !== 0) throw corrupt(what, `IEND at byte ${at} carries ${length} data bytes (it must be empty)`, { offset: at, chunk: type });
        seenIend = true;
      } else if (type.charCodeAt(0) < 0x61 && !CRITICAL.has(type)) {
        throw corrupt(what, `unknown critical chunk ${type} at byte ${at}`, { offset: at, chunk: type });
      }
    }
    at += 12 + length;
  }
  if (!ihdr) throw corrupt(what, 'no IHDR chunk');
  if (!idat.length) throw corrupt(what, 'no IDAT chunk (no image data)');
  if (ihdr.colourType === 3 && !seenPlte) throw corrupt(what, 'a palette image without a PLTE chunk');
  if (!seenIend) throw corrupt(what, 'no IEND chunk: the file is truncated');
  return { width: ihdr.width, height: ihdr.height, idat, rawBytes: ihdr.rawBytes };
}

/**
 * Inflate the concatenated IDAT data (zlib checks its header and Adler-32 while doing so) and check it
 * gives exactly the bytes IHDR promises. Runs on libuv's thread pool, not the caller's thread. Call it
 * after the pixel-count guard: it allocates the filtered scanlines (about width × height × bytes/pixel).
 */
export async function checkPngImageData(layout: PngLayout, what = '<buffer>'): Promise<void> {
  const stream = layout.idat.length === 1 ? layout.idat[0]! : Buffer.concat(layout.idat);
  let raw: Buffer;
  try {
    // One byte over the expected size, so that too much data is seen without inflating a bomb.
    raw = await inflateAsync(stream, { maxOutputLength: layout.rawBytes + 1 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_BUFFER_TOO_LARGE') throw corrupt(what, `the image data inflates to more than the ${layout.rawBytes} bytes IHDR gives`);
    const why = /incorrect data check/i.test(err.message) ? 'the zlib Adler-32 checksum of the image data does not match' : `the image data does not inflate (zlib: ${err.message})`;
    throw corrupt(what, why);
  }
  if (raw.length !== layout.rawBytes) throw corrupt(what, `the image data inflates to ${raw.length} bytes where IHDR gives ${layout.rawBytes}`);
}
