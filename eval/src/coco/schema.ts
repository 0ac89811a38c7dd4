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
const segmentation = z.union([polygons, rle]);

/** A GT annotation; which fields are required is checked per IoU type after parsing. */
export const gtAnnotationSchema = z.object({
  id: num,
  image_id: num,
  category_id: num,
  area: num.optional(),
  iscrowd: flag.optional(),
  bbox: box.optional(),
  segmentation: segmentation.optional(),
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

/** Format a JSON path like `annotations[3].bbox[2]`. */
export function jsonPath(root: string, path: readonly PropertyKey[]): string {
  let s = root;
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : `${s ? '.' : ''}${String(p)}`;
  return s || '(root)';
}

/** Throw E_COCO_FORMAT naming the file and JSON path. */
export function formatError(source: string, path: string, message: string): never {
  throw new KestrelError('E_COCO_FORMAT', `${source}: ${path}: ${message}`, { details: { source, path } });
}

/** Validate with a zod schema; the first issue becomes an E_COCO_FORMAT error with its JSON path. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, source: string, root: string): z.output<S> {
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
