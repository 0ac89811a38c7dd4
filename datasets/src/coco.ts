import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KestrelError } from '@kestrel/core';

/** One image of a COCO-format data set. */
export interface CocoImageRef {
  id: number;
  fileName: string;
  /** Absolute path of the image file. */
  path: string;
  width: number;
  height: number;
}

/** A COCO-format data set on disk: `images/` plus `annotations/instances_*.json`. */
export interface CocoDataset {
  dir: string;
  /** The instances JSON used (ground truth for COCOeval). */
  annotationsPath: string;
  images: CocoImageRef[];
  categories: Array<{ id: number; name: string }>;
  /** Number of annotations in the JSON. */
  annotationCount: number;
}

function bad(msg: string): never {
  throw new KestrelError('E_COCO_FORMAT', msg);
}

/**
 * Open a COCO-format detection data set: `dir/images/` holds the pictures and `dir/annotations/`
 * an `instances_*.json` (or pass `annotations` explicitly). Checks that every listed image exists.
 */
export async function loadCocoDataset(dir: string, options: { annotations?: string } = {}): Promise<CocoDataset> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new KestrelError('E_IO', `data set directory ${root} does not exist`);
  let annotationsPath = options.annotations ? resolve(options.annotations) : undefined;
  if (!annotationsPath) {
    const adir = join(root, 'annotations');
    // Box annotations first: a set may also carry a smaller instances_seg_*.json for masks.
    const names = existsSync(adir)
      ? (await readdir(adir)).filter((f) => /^instances.*\.json$/.test(f)).sort((a, b) => Number(a.includes('seg')) - Number(b.includes('seg')) || a.localeCompare(b))
      : [];
    if (names.length === 0) bad(`${root} has no annotations/instances_*.json (COCO layout: images/ + annotations/instances_*.json)`);
    annotationsPath = join(adir, names[0]!);
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(annotationsPath, 'utf8'));
  } catch (e) {
    bad(`cannot read COCO annotations ${annotationsPath}: ${(e as Error).message}`);
  }
  const j = json as { images?: unknown; annotations?: unknown; categories?: unknown };
  if (!Array.isArray(j.images) || !Array.isArray(j.categories)) bad(`${annotationsPath} is not a COCO instances file (needs "images" and "categories" arrays)`);
  const imgDir = existsSync(join(root, 'images')) ? join(root, 'images') : root;
  const images: CocoImageRef[] = [];
  for (const [i, raw] of (j.images as unknown[]).entries()) {
    const im = raw as { id?: unknown; file_name?: unknown; width?: unknown; height?: unknown };
    if (typeof im.id !== 'number' || typeof im.file_name !== 'string') bad(`${annotationsPath}: images[${i}] needs numeric "id" and string "file_name"`);
    const path = join(imgDir, im.file_name);
    if (!existsSync(path)) bad(`image ${im.file_name} (id ${im.id}) listed in ${annotationsPath} is missing from ${imgDir}`);
    images.push({ id: im.id, fileName: im.file_name, path, width: Number(im.width) || 0, height: Number(im.height) || 0 });
  }
  const categories = (j.categories as Array<{ id?: unknown; name?: unknown }>).map((c, i) => {
    if (typeof c.id !== 'number') bad(`${annotationsPath}: categories[${i}] needs a numeric "id"`);
    return { id: c.id, name: String(c.name ?? c.id) };
  });
  return { dir: root, annotationsPath, images, categories, annotationCount: Array.isArray(j.annotations) ? j.annotations.length : 0 };
}
