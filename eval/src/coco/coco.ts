/**
 * `COCO`: a GT or results set indexed the way pycocotools' `COCO` indexes it, and `loadRes`, which
 * turns a results list into a COCO object (ids 1..N in file order, area and bbox derived as
 * pycocotools derives them).
 */
import { readFileSync } from 'node:fs';
import { KestrelError } from '@kestrel/core';
import { type Rle, rleArea, rleFrPoly, rleFrString, rleMerge, rleToBbox } from '../mask/rle.js';
import {
  fastGtDataset, fastResults, formatError, gtDatasetSchema, segmentationSchema, parseWith, resultsSchema, type GtDatasetInput, type ResultInput, type SegmentationInput,
} from './schema.js';

/** An annotation as held in a COCO object (GT or result). */
export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  area?: number;
  iscrowd?: number;
  bbox?: number[];
  segmentation?: SegmentationInput;
  keypoints?: number[];
  num_keypoints?: number;
  /** Detection confidence (results only). */
  score?: number;
  /** Position in the source file's list, for error messages. */
  readonly _index: number;
  /** Cached RLE of `segmentation` (segm evaluation). */
  _rle?: Rle;
  /** A bbox result without segmentation: its segmentation is the box polygon (as loadRes sets it). */
  _boxSegm?: boolean;
}

export interface CocoImage { id: number; height?: number; width?: number; file_name?: string }
export interface CocoCategory { id: number; name?: string; supercategory?: string }

/** Read and JSON-parse a file; failures become E_IO / E_COCO_FORMAT. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KestrelError('E_IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KestrelError('E_COCO_FORMAT', `${path}: not valid JSON (${(e as Error).message})`, { cause: e, details: { source: path, path: '$' } });
  }
}

/** A COCO data set (GT or results) with the indexes pycocotools builds in `createIndex`. */
export class COCO {
  readonly images: CocoImage[];
  readonly annotations: CocoAnnotation[];
  readonly categories: CocoCategory[];
  /** Where the data came from (file name), for error messages. */
  readonly source: string;
  /** id → annotation; a later annotation with the same id replaces an earlier one (as a Python dict). */
  readonly anns = new Map<number, CocoAnnotation>();
  readonly imgs = new Map<number, CocoImage>();
  readonly cats = new Map<number, CocoCategory>();
  readonly imgToAnns = new Map<number, CocoAnnotation[]>();
  /** Root of JSON paths in error messages (`$.annotations` for GT, `$` for a results list). */
  readonly annPathRoot: string;

  /**
   * Build from a parsed GT JSON object (validated; bad input throws E_COCO_FORMAT with the JSON path).
   * @param dataset parsed `instances_*.json` / `person_keypoints_*.json` content
   * @param source name used in error messages (e.g. the file path)
   */
  constructor(dataset: GtDatasetInput | unknown, source = 'gt') {
    const d = parseWith(gtDatasetSchema, dataset, source, '$', fastGtDataset);
    this.source = source;
    this.images = d.images;
    this.categories = d.categories;
    // Known fields only: keeps objects one shape, and input keys never reach internal fields.
    this.annotations = d.annotations.map((a, i): CocoAnnotation => ({
      id: a.id, image_id: a.image_id, category_id: a.category_id, area: a.area, iscrowd: a.iscrowd, bbox: a.bbox,
      segmentation: a.segmentation as SegmentationInput | undefined, keypoints: a.keypoints, num_keypoints: a.num_keypoints, _index: i,
    }));
    this.annPathRoot = '$.annotations';
    this.createIndex();
  }

  /** Load a GT file from disk. */
  static fromFile(path: string): COCO {
    return new COCO(readJsonFile(path), path);
  }

  /** Internal: a results COCO object built by {@link loadRes}. */
  private static fromParts(images: CocoImage[], categories: CocoCategory[], anns: CocoAnnotation[], source: string): COCO {
    const o = Object.create(COCO.prototype) as COCO;
    const w = o as unknown as Record<string, unknown>;
    w.images = images; w.categories = categories; w.annotations = anns; w.source = source; w.annPathRoot = '$';
    w.anns = new Map(); w.imgs = new Map(); w.cats = new Map(); w.imgToAnns = new Map();
    o.createIndex();
    return o;
  }

  private createIndex(): void {
    for (const ann of this.annotations) {
      let l = this.imgToAnns.get(ann.image_id);
      if (!l) this.imgToAnns.set(ann.image_id, (l = []));
      l.push(ann);
      this.anns.set(ann.id, ann);
    }
    for (const img of this.images) this.imgs.set(img.id, img);
    for (const cat of this.categories) this.cats.set(cat.id, cat);
  }

  /** Image ids in first-seen order of `images` (as `getImgIds()`). */
  getImgIds(): number[] {
    return [...this.imgs.keys()];
  }

  /** Category ids in file order (as `getCatIds()`). */
  getCatIds(): number[] {
    return this.categories.map((c) => c.id);
  }

  /**
   * Annotations for the given images (in image order, then file order) and categories, resolved
   * through the id index exactly as `loadAnns(getAnnIds(imgIds, catIds))` does.
   */
  annotationsFor(imgIds: readonly number[], catIds: readonly number[]): CocoAnnotation[] {
    let anns: CocoAnnotation[];
    if (imgIds.length === 0) anns = this.annotations;
    else {
      anns = [];
      for (const i of imgIds) {
        const l = this.imgToAnns.get(i);
        if (l) for (const a of l) anns.push(a);
      }
    }
    if (catIds.length) {
      const s = new Set(catIds);
      anns = anns.filter((a) => s.has(a.category_id));
    }
    return anns.map((a) => this.anns.get(a.id)!);
  }

  /** JSON path of an annotation field, for error messages. */
  annPath(ann: CocoAnnotation, field: string): string {
    return `${this.annPathRoot}[${ann._index}].${field}`;
  }

  /**
   * The annotation's segmentation as an RLE (`annToRLE`): polygons are rasterised and merged at the
   * image's size, uncompressed RLE is compressed, compressed RLE is used as is.
   */
  annToRLE(ann: CocoAnnotation): Rle {
    if (ann._rle) return ann._rle;
    let segm = ann.segmentation;
    if (segm === undefined && ann._boxSegm && ann.bbox) {
      const bb = ann.bbox;
      const x1 = bb[0]!, x2 = bb[0]! + bb[2]!, y1 = bb[1]!, y2 = bb[1]! + bb[3]!;
      segm = [[x1, y1, x1, y2, x2, y2, x2, y1]];
    }
    if (segm === undefined) formatError(this.source, this.annPath(ann, 'segmentation'), 'missing (needed for segm evaluation)');
    segm = parseWith(segmentationSchema, segm, this.source, this.annPath(ann, 'segmentation'));
    let r: Rle;
    if (Array.isArray(segm)) {
      const { h, w } = this.imageSize(ann);
      if (segm.length === 0 || segm[0]!.length <= 4) {
        // pycocotools reads a first polygon of 4 numbers as a box list and rejects it; fewer is unsupported.
        formatError(this.source, this.annPath(ann, 'segmentation[0]'), 'a polygon needs at least 3 points (more than 4 numbers)');
      }
      const rles = segm.map((p, i) => {
        try {
          return rleFrPoly(p, Math.floor(p.length / 2), h, w);
        } catch (e) {
          return formatError(this.source, this.annPath(ann, `segmentation[${i}]`), (e as Error).message);
        }
      });
      r = rleMerge(rles, false);
    } else if (Array.isArray(segm.counts)) {
      r = { h: segm.size[0], w: segm.size[1], cnts: Uint32Array.from(segm.counts) };
    } else {
      r = rleFrString(segm.counts, segm.size[0], segm.size[1]);
    }
    let sum = 0;
    for (let j = 0; j < r.cnts.length; j++) sum += r.cnts[j]!;
    if (sum !== r.h * r.w) {
      // pycocotools would loop forever or read garbage on such an RLE.
      formatError(this.source, this.annPath(ann, 'segmentation.counts'), `run lengths add up to ${sum}, not height*width = ${r.h * r.w}`);
    }
    ann._rle = r;
    return r;
  }

  private imageSize(ann: CocoAnnotation): { h: number; w: number } {
    const img = this.imgs.get(ann.image_id);
    if (!img) return formatError(this.source, this.annPath(ann, 'image_id'), `image ${ann.image_id} is not in "images" (needed to rasterise a polygon)`);
    if (typeof img.height !== 'number' || typeof img.width !== 'number') {
      return formatError(this.source, `$.images[${this.images.indexOf(img)}]`, 'height and width are needed to rasterise polygons');
    }
    return { h: img.height, w: img.width };
  }

  /**
   * Turn a results list into a COCO object as pycocotools' `loadRes` does. Which branch applies is
   * decided by the first result: `bbox` (area = w*h; a box polygon as segmentation if none),
   * `segmentation` (area = mask area, bbox = mask box unless given) or `keypoints` (bbox and area
   * from the keypoints' extent). Ids are 1..N in file order; `iscrowd` is 0.
   * @param results parsed results JSON (array of `{image_id, category_id, score, ...}`)
   * @param source name used in error messages
   */
  loadRes(results: ResultInput[] | unknown, source = 'results'): COCO {
    const list = parseWith(resultsSchema, results, source, '$', fastResults);
    for (let i = 0; i < list.length; i++) {
      if (!this.imgs.has(list[i]!.image_id)) {
        formatError(source, `$[${i}].image_id`, `image id ${list[i]!.image_id} is not in the GT images (results do not correspond to the GT set)`);
      }
    }
    const first = list[0];
    const mode = !first ? 'empty'
      : first.bbox !== undefined && first.bbox.length !== 0 ? 'bbox'
        : first.segmentation !== undefined ? 'segm'
          : first.keypoints !== undefined ? 'keypoints' : 'none';
    if (mode === 'none') formatError(source, '$[0]', 'a result needs "bbox", "segmentation" or "keypoints"');
    const res = COCO.fromParts(this.images, this.categories, [], source);
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      const a: CocoAnnotation = { id: i + 1, image_id: r.image_id, category_id: r.category_id, score: r.score, _index: i };
      if (r.segmentation !== undefined) a.segmentation = r.segmentation;
      if (r.keypoints !== undefined) a.keypoints = r.keypoints;
      if (mode === 'bbox') {
        const bb = r.bbox;
        if (!bb || bb.length !== 4) formatError(source, `$[${i}].bbox`, 'missing or not [x, y, w, h] (the first result has a bbox)');
        a.bbox = bb;
        // pycocotools sets segmentation to the box polygon here; it is only read by segm
        // evaluation, so annToRLE derives it from the box on demand instead of storing 100k arrays.
        if (a.segmentation === undefined) a._boxSegm = true;
        a.area = bb[2]! * bb[3]!;
        a.iscrowd = 0;
      } else if (mode === 'segm') {
        if (r.segmentation === undefined) formatError(source, `$[${i}].segmentation`, 'missing (the first result has a segmentation)');
        const R = res.annToRLE(a);
        a.area = rleArea(R);
        a.bbox = r.bbox && r.bbox.length === 4 ? r.bbox : rleToBbox(R);
        a.iscrowd = 0;
      } else if (mode === 'keypoints') {
        const s = r.keypoints;
        if (!s || s.length < 3) formatError(source, `$[${i}].keypoints`, 'missing or shorter than one (x, y, v) triple (the first result has keypoints)');
        let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
        for (let j = 0; j < s.length; j += 3) { const x = s[j]!; if (x < x0) x0 = x; if (x > x1) x1 = x; }
        for (let j = 1; j < s.length; j += 3) { const y = s[j]!; if (y < y0) y0 = y; if (y > y1) y1 = y; }
        a.area = (x1 - x0) * (y1 - y0);
        a.bbox = [x0, y0, x1 - x0, y1 - y0];
      }
      res.annotations.push(a);
    }
    (res as unknown as { createIndex(): void }).createIndex();
    return res;
  }
}
