import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KestrelError } from '@kestrel/core';

/** One labelled image of a binary classification data set. */
export interface LabelledImage {
  /** Absolute path of the image. */
  file: string;
  /** 1 = positive (pneumonia / defective), 0 = negative. */
  label: 0 | 1;
  /** Split named in the labels file (PneumoniaMNIST layout), else undefined. */
  split?: string;
  /** Stratum for stratified splits: label plus subtype (panel type, defect class). */
  stratum: string;
  /** Layout-specific extras: ELPV defect probability and type, magnetic-tile class. */
  meta: Record<string, string | number>;
}

/** Which labels.csv layout a data folder uses. */
export type LabelsLayout = 'classification-csv' | 'elpv' | 'magnetic-tile';

function dataError(msg: string, details?: Record<string, unknown>): KestrelError {
  return new KestrelError('E_DATA_FORMAT', msg, details ? { details } : undefined);
}

async function readLabelsFile(dir: string): Promise<{ path: string; text: string }> {
  const root = resolve(dir);
  if (!existsSync(root)) throw dataError(`data folder ${root} does not exist`, { dir: root });
  if (!statSync(root).isDirectory()) throw dataError(`data folder ${root} is a file; give the folder that holds labels.csv and the images`, { dir: root });
  const path = join(root, 'labels.csv');
  if (!existsSync(path)) throw dataError(`${root} has no labels.csv; a data folder needs labels.csv next to its images (see docs/qc-models.md for the layouts)`, { dir: root });
  try {
    return { path, text: await readFile(path, 'utf8') };
  } catch (e) {
    // e.g. labels.csv is a folder or unreadable: a data error, not an internal error.
    throw dataError(`cannot read ${path}: ${(e as Error).message}`, { file: path });
  }
}

/** Split a simple CSV line (no quoted commas: the supported layouts never need them). */
function csvCells(line: string): string[] {
  return line.split(',').map((c) => c.trim());
}

/**
 * Tell the layout of a labels.csv from its first line: a comma-separated header with `file`, `split`,
 * `label` (PneumoniaMNIST), a header with `image`, `defective` (magnetic tile), or headerless
 * whitespace-separated `path probability type` rows (ELPV).
 */
export function detectLabelsLayout(firstLine: string): LabelsLayout {
  const l = firstLine.replace(/^\uFEFF/, '').trim();
  if (l.includes(',')) {
    const h = csvCells(l).map((c) => c.toLowerCase());
    if (h.includes('image') && h.includes('defective')) return 'magnetic-tile';
    if (h.includes('file') && h.includes('label')) return 'classification-csv';
    throw dataError(`unrecognised labels.csv header "${l.slice(0, 120)}": expected columns file,split,label (X-ray) or image,defective (magnetic tile), or whitespace-separated "path probability type" rows (ELPV)`);
  }
  const cells = l.split(/\s+/);
  if (cells.length >= 3 && Number.isFinite(Number(cells[1]))) return 'elpv';
  throw dataError(`unrecognised labels.csv line "${l.slice(0, 120)}": expected a CSV header or whitespace-separated "path probability type" rows (ELPV)`);
}

function checkFile(root: string, rel: string, lineNo: number, labelsPath: string): string {
  const abs = resolve(root, rel);
  if (!existsSync(abs)) throw dataError(`${labelsPath} line ${lineNo}: image ${rel} does not exist`, { file: abs, line: lineNo });
  return abs;
}

function parseBinary(v: string | undefined, what: string, lineNo: number, labelsPath: string): 0 | 1 {
  if (v === '0' || v === '1') return Number(v) as 0 | 1;
  throw dataError(`${labelsPath} line ${lineNo}: ${what} must be 0 or 1, got "${v ?? ''}"`, { line: lineNo });
}

/**
 * Read a binary image-classification folder: `labels.csv` in one of three layouts (see
 * {@link detectLabelsLayout}) next to the images. Every referenced image must exist. ELPV cells count
 * as defective when their defect probability is ≥ 0.5.
 *
 * @param dir the data folder
 * @param options.split keep only rows of this split (layouts with a split column)
 * @throws KestrelError E_DATA_FORMAT for a missing folder, labels.csv or image, or a bad layout
 */
export async function readLabelledImages(dir: string, options: { split?: string } = {}): Promise<{ layout: LabelsLayout; items: LabelledImage[] }> {
  const root = resolve(dir);
  const { path, text } = await readLabelsFile(root);
  const lines = text.split(/\r?\n/);
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0) throw dataError(`${path} is empty`);
  const layout = detectLabelsLayout(lines[first]!);
  const items: LabelledImage[] = [];
  if (layout === 'elpv') {
    lines.forEach((raw, i) => {
      const l = raw.trim();
      if (!l) return;
      const [rel, prob, type] = l.split(/\s+/);
      const p = Number(prob);
      if (!rel || !Number.isFinite(p) || p < 0 || p > 1 || !type) throw dataError(`${path} line ${i + 1}: expected "path probability type", got "${l.slice(0, 120)}"`, { line: i + 1 });
      const label: 0 | 1 = p >= 0.5 ? 1 : 0;
      items.push({ file: checkFile(root, rel, i + 1, path), label, stratum: `${p.toFixed(3)}:${type}`, meta: { probability: p, type } });
    });
  } else {
    const header = csvCells(lines[first]!.replace(/^\uFEFF/, '')).map((c) => c.toLowerCase());
    const col = (n: string): number => header.indexOf(n);
    const fileCol = layout === 'magnetic-tile' ? col('image') : col('file');
    const labelCol = layout === 'magnetic-tile' ? col('defective') : col('label');
    const splitCol = col('split');
    const classCol = col('class');
    for (let i = first + 1; i < lines.length; i++) {
      const l = lines[i]!.trim();
      if (!l) continue;
      const c = csvCells(l);
      if (c.length < header.length) throw dataError(`${path} line ${i + 1}: ${c.length} columns, the header has ${header.length}`, { line: i + 1 });
      const split = splitCol >= 0 ? c[splitCol] : undefined;
      if (options.split !== undefined && split !== options.split) continue;
      const label = parseBinary(c[labelCol], header[labelCol]!, i + 1, path);
      const cls = classCol >= 0 ? c[classCol]! : '';
      items.push({
        file: checkFile(root, c[fileCol]!, i + 1, path),
        label,
        ...(split !== undefined ? { split } : {}),
        stratum: `${label}:${cls}`,
        meta: cls ? { class: cls } : {},
      });
    }
  }
  if (options.split !== undefined && items.length === 0) {
    throw dataError(`${path} has no rows with split "${options.split}"${layout === 'classification-csv' ? '' : ' (this layout has no split column)'}`);
  }
  if (items.length === 0) throw dataError(`${path} lists no images`);
  return { layout, items };
}
