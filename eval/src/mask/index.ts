/**
 * `mask` — the COCO mask API (`pycocotools.mask`) in TypeScript. RLE counts are column-major run
 * lengths starting with zeros; the compressed form is COCO's ASCII string. Masks passed in or returned
 * as pixel arrays are row-major (`data[y * width + x]`), which is what image code in Node uses; the
 * conversion to COCO's column-major order happens inside.
 */
import { KestrelError } from '@kestrel/core';
import {
  type Rle, rleEncode, rleDecode, rleMerge, rleArea, rleToBbox, rleFrPoly, rleFrBbox, rleToString,
  rleFrString, rleIou, bbIou,
} from './rle.js';

export type { Rle } from './rle.js';

/** COCO RLE with compressed (string) counts, as pycocotools returns it. */
export interface CompressedRLE {
  size: [number, number];
  counts: string;
}

/** COCO RLE with uncompressed counts (run lengths). */
export interface UncompressedRLE {
  size: [number, number];
  counts: number[];
}

/** Either RLE form: `size` is `[height, width]`. */
export type RLE = CompressedRLE | UncompressedRLE;

/** A binary mask: `data` holds `height*width` values, 0 = background, non-zero = foreground. */
export interface BinaryMask {
  height: number;
  width: number;
  data: ArrayLike<number>;
  /** Memory order of `data`; default `'row-major'` (`data[y*width+x]`). */
  order?: 'row-major' | 'column-major';
}

/** A polygon: flat `[x0, y0, x1, y1, ...]` in pixels. */
export type Polygon = number[];

/** An `[x, y, w, h]` box. */
export type Box = [number, number, number, number] | number[];

function fail(message: string): never {
  throw new KestrelError('E_COCO_FORMAT', message);
}

/** Parse either RLE form into the internal representation (each RLE keeps its own size). */
export function toRle(r: RLE): Rle {
  if (!r || !Array.isArray(r.size) || r.size.length !== 2) fail('RLE needs "size": [height, width]');
  const [h, w] = r.size;
  if (typeof r.counts === 'string') return rleFrString(r.counts, h, w);
  if (Array.isArray(r.counts)) return { h, w, cnts: Uint32Array.from(r.counts) };
  return fail('RLE "counts" must be a string or an array of run lengths');
}

/** Internal RLE → compressed COCO RLE. */
export function fromRle(R: Rle): CompressedRLE {
  return { size: [R.h, R.w], counts: rleToString(R) };
}

function toColumnMajor(m: BinaryMask | number[][]): { h: number; w: number; data: ArrayLike<number> } {
  if (Array.isArray(m)) {
    const h = m.length;
    const w = h ? m[0]!.length : 0;
    const out = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) {
      const row = m[y]!;
      if (row.length !== w) fail(`mask row ${y} has ${row.length} values, expected ${w}`);
      for (let x = 0; x < w; x++) out[x * h + y] = row[x]! ? 1 : 0;
    }
    return { h, w, data: out };
  }
  const { height: h, width: w, data } = m;
  if (data.length !== h * w) fail(`mask data has ${data.length} values, expected height*width = ${h * w}`);
  if (m.order === 'column-major') {
    const out = new Uint8Array(h * w);
    for (let i = 0; i < h * w; i++) out[i] = data[i]! ? 1 : 0;
    return { h, w, data: out };
  }
  const out = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[x * h + y] = data[y * w + x]! ? 1 : 0;
  return { h, w, data: out };
}

/** Encode a binary mask (row-major by default, or nested `mask[y][x]`) as compressed RLE (`mask.encode`). */
export function encode(mask: BinaryMask | number[][]): CompressedRLE {
  const { h, w, data } = toColumnMajor(mask);
  return fromRle(rleEncode(data, h, w));
}

/** Decode an RLE into a row-major binary mask (`mask.decode`). */
export function decode(rle: RLE): { height: number; width: number; data: Uint8Array } {
  const R = toRle(rle);
  const col = rleDecode(R);
  const out = new Uint8Array(R.h * R.w);
  for (let x = 0; x < R.w; x++) for (let y = 0; y < R.h; y++) out[y * R.w + x] = col[x * R.h + y]!;
  return { height: R.h, width: R.w, data: out };
}

/** Polygons → one RLE per polygon (`frPyObjects` on a list of polygons; odd trailing coordinate dropped). */
export function frPolygons(polygons: readonly Polygon[], h: number, w: number): CompressedRLE[] {
  return polygons.map((p) => fromRle(rleFrPoly(p, Math.floor(p.length / 2), h, w)));
}

/** Boxes `[x, y, w, h]` → one RLE per box (`frPyObjects` on an Nx4 array). */
export function frBboxes(boxes: readonly Box[], h: number, w: number): CompressedRLE[] {
  return boxes.map((b) => {
    if (b.length !== 4) fail('a box must have 4 numbers [x, y, w, h]');
    return fromRle(rleFrBbox(b, h, w));
  });
}

/** Uncompressed RLE → compressed RLE; the RLE's own `size` is kept (as pycocotools does). */
export function frUncompressed(rle: UncompressedRLE): CompressedRLE {
  return fromRle(toRle(rle));
}

/**
 * `pycocotools.mask.frPyObjects` dispatch: a list whose first entry has 4 numbers is a list of boxes,
 * more than 4 a list of polygons; an RLE object or a list of them is compressed. pycocotools rejects
 * a bare flat polygon and lists whose first polygon has 4 or fewer numbers; so does this function
 * (E_COCO_FORMAT), except that box lists are accepted (pycocotools needs a numpy array for them).
 */
export function frPyObjects(obj: readonly Polygon[] | readonly Box[] | UncompressedRLE | readonly UncompressedRLE[], h: number, w: number): CompressedRLE | CompressedRLE[] {
  if (Array.isArray(obj)) {
    if (obj.length === 0) fail('frPyObjects: empty list');
    const first = obj[0] as unknown;
    if (Array.isArray(first)) {
      if (first.length === 4) return frBboxes(obj as Box[], h, w);
      if (first.length > 4) return frPolygons(obj as Polygon[], h, w);
      return fail('frPyObjects: a polygon needs more than 4 numbers');
    }
    if (first !== null && typeof first === 'object' && 'counts' in first && 'size' in first) {
      return (obj as UncompressedRLE[]).map(frUncompressed);
    }
    return fail('frPyObjects: expected polygons (list of number lists), boxes or RLE objects');
  }
  if (obj && typeof obj === 'object' && 'counts' in obj && 'size' in obj) return frUncompressed(obj as UncompressedRLE);
  return fail('frPyObjects: input type is not supported');
}

/** Foreground area of each RLE (`mask.area`). */
export function area(rles: readonly RLE[]): number[] {
  return rles.map((r) => rleArea(toRle(r)));
}

/** Bounding box `[x, y, w, h]` of each RLE (`mask.toBbox`). */
export function toBbox(rles: readonly RLE[]): [number, number, number, number][] {
  return rles.map((r) => rleToBbox(toRle(r)));
}

/** Union (default) or intersection of RLEs of one size (`mask.merge`). */
export function merge(rles: readonly RLE[], intersect = false): CompressedRLE {
  return fromRle(rleMerge(rles.map(toRle), intersect));
}

/**
 * IoU matrix `[dt][gt]` (`mask.iou`) between two lists of RLEs or two lists of boxes. For a GT with
 * `iscrowd` set, the union is the detection's area. Returns `[]` when either list is empty.
 */
export function iou(dt: readonly RLE[] | readonly Box[], gt: readonly RLE[] | readonly Box[], iscrowd: ArrayLike<number | boolean>): number[][] {
  if (dt.length === 0 || gt.length === 0) return [];
  const crowd = Array.from({ length: gt.length }, (_, i) => (iscrowd[i] ? 1 : 0));
  const isBox = (o: unknown): boolean => Array.isArray(o) && o.length === 4;
  const dtBox = dt.every(isBox), gtBox = gt.every(isBox);
  if (dtBox && gtBox) return bbIou(dt as Box[], gt as Box[], crowd);
  const isRle = (o: unknown): boolean => o !== null && typeof o === 'object' && !Array.isArray(o);
  if (dt.every(isRle) && gt.every(isRle)) return rleIou((dt as RLE[]).map(toRle), (gt as RLE[]).map(toRle), crowd);
  return fail('iou: dt and gt must both be lists of boxes [x,y,w,h] or both lists of RLEs');
}

export { rleEncode, rleDecode, rleMerge, rleArea, rleToBbox, rleFrPoly, rleFrBbox, rleToString, rleFrString, rleIou, bbIou };
