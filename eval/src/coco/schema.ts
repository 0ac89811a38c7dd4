/**
 * zod schemas for COCO instances GT files and COCO results lists, and the conversion of zod issues
 * into `E_COCO_FORMAT` errors that name the JSON path of the bad field.
 */
import { z } from 'zod';
import { KestrelError } from '@kestrel/core';

const num = z.number();
/** `iscrowd` may be 0/1 or a boolean (pycocotools applies `int()`). */
const flag = z.union([z.number(), z.boolean()]).transform((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
const box = z.array(num).length(4, 'a box is [x, y, w, h] (4 numbers)');
const rle = z.object({
  size: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  counts: z.union([z.string(), z.array(z.number().int().nonnegative())]),
});
const polygons = z.array(z.array(num));
/** Polygons (list of flat [x, y, ...] lists) or RLE (compressed or uncompressed counts). */
export const segmentationSchema = z.union([polygons, rle]);
const segmentation = segmentationSchema;

/**
 * A GT annotation; which fields are required is checked per IoU type after parsing. `segmentation` is
 * checked only when segm evaluation reads it (pycocotools never looks at it for bbox / keypoints).
 */
export const gtAnnotationSchema = z.object({
  id: num,
  image_id: num,
  category_id: num,
  area: num.optional(),
  iscrowd: flag.optional(),
  bbox: box.optional(),
  segmentation: z.unknown().optional(),
  keypoints: z.array(num).optional(),
  num_keypoints: num.optional(),
});

export const imageSchema = z.object({ id: num, height: num.optional(), width: num.optional(), file_name: z.string().optional() });
export const categorySchema = z.object({ id: num, name: z.string().optional(), supercategory: z.string().optional() });

/** A COCO instances / person-keypoints GT file. */
export const gtDatasetSchema = z.object({
  images: z.array(imageSchema),
  annotations: z.array(gtAnnotationSchema).default([]),
  categories: z.array(categorySchema),
});

/** One detection result; `bbox`, `segmentation` or `keypoints` must be present depending on the IoU type. */
export const resultSchema = z.object({
  image_id: num,
  category_id: num,
  score: num,
  bbox: z.union([box, z.array(num).length(0)]).optional(),
  segmentation: segmentation.optional(),
  keypoints: z.array(num).optional(),
});

export const resultsSchema = z.array(resultSchema);

export type GtDatasetInput = z.input<typeof gtDatasetSchema>;
export type GtDataset = z.output<typeof gtDatasetSchema>;
export type GtAnnotationInput = z.input<typeof gtAnnotationSchema>;
export type ResultInput = z.input<typeof resultSchema>;
export type SegmentationInput = z.input<typeof segmentation>;

/** Format a JSON path like `$.annotations[3].bbox[2]`. */
export function jsonPath(root: string, path: readonly PropertyKey[]): string {
  let s = root;
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return s;
}

/** Throw E_COCO_FORMAT naming the file and JSON path. */
export function formatError(source: string, path: string, message: string): never {
  throw new KestrelError('E_COCO_FORMAT', `${source}: ${path}: ${message}`, { details: { source, path } });
}

/**
 * Validate with a zod schema; the first issue becomes an E_COCO_FORMAT error with its JSON path.
 * `fast` is a conservative hand-written check for large files: when it accepts, the value is already
 * in the schema's output form and zod is skipped; when it rejects, zod decides and reports.
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, source: string, root: string, fast?: (v: unknown) => boolean): z.output<S> {
  if (fast && fast(value)) return value as z.output<S>;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = deepestIssue(r.error.issues);
  return formatError(source, jsonPath(root, issue.path), issue.message);
}

type Issue = z.core.$ZodIssue;

/** For union failures zod reports the union; descend into the branch that got furthest for a precise path. */
function deepestIssue(issues: readonly Issue[]): Issue {
  let best = issues[0]!;
  for (const i of issues) {
    if (i.code === 'invalid_union' && Array.isArray(i.errors)) {
      for (const branch of i.errors) {
        if (!branch.length) continue;
        const d = deepestIssue(branch);
        const full = { ...d, path: [...i.path, ...d.path] } as Issue;
        if (full.path.length > best.path.length) best = full;
      }
    }
  }
  return best;
}

// ---- Fast structural checks (accept only what the zod schemas accept unchanged). ----

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const optNum = (v: unknown): boolean => v === undefined || isNum(v);
const optStr = (v: unknown): boolean => v === undefined || typeof v === 'string';
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function numArray(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!isNum(v[i])) return false;
  return true;
}

function fastBox(v: unknown, allowEmpty: boolean): boolean {
  return v === undefined || (Array.isArray(v) && (v.length === 4 || (allowEmpty && v.length === 0)) && numArray(v));
}

function fastSegm(v: unknown): boolean {
  if (v === undefined) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (!numArray(v[i])) return false;
    return true;
  }
  if (!isObj(v)) return false;
  const size = v.size, counts = v.counts;
  if (!Array.isArray(size) || size.length !== 2 || !isCount(size[0]) || !isCount(size[1])) return false;
  if (typeof counts === 'string') return true;
  if (!Array.isArray(counts)) return false;
  for (let i = 0; i < counts.length; i++) if (!isCount(counts[i])) return false;
  return true;
}

/** Fast check for {@link gtDatasetSchema} (booleans for iscrowd and a missing annotations list go to zod). */
export function fastGtDataset(v: unknown): boolean {
  if (!isObj(v) || !Array.isArray(v.images) || !Array.isArray(v.categories) || !Array.isArray(v.annotations)) return false;
  for (const im of v.images) {
    if (!isObj(im) || !isNum(im.id) || !optNum(im.height) || !optNum(im.width) || !optStr(im.file_name)) return false;
  }
  for (const c of v.categories) if (!isObj(c) || !isNum(c.id) || !optStr(c.name) || !optStr(c.supercategory)) return false;
  for (const a of v.annotations) {
    if (!isObj(a) || !isNum(a.id) || !isNum(a.image_id) || !isNum(a.category_id) || !optNum(a.area) || !optNum(a.iscrowd)) return false;
    if (!fastBox(a.bbox, false) || !optNum(a.num_keypoints)) return false;
    if (a.keypoints !== undefined && !numArray(a.keypoints)) return false;
  }
  return true;
}

/** Fast check for {@link resultsSchema}. */
export function fastResults(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (const r of v) {
    if (!isObj(r) || !isNum(r.image_id) || !isNum(r.category_id) || !isNum(r.score)) return false;
    if (!fastBox(r.bbox, true) || !fastSegm(r.segmentation)) return false;
    if (r.keypoints !== undefined && !numArray(r.keypoints)) return false;
  }
  return true;
}
