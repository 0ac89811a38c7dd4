import { readdir, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { KestrelError } from '@kestrel/core';

/** File extensions treated as images. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'] as const;

/**
 * List the image files under a folder (recursively, sorted, absolute paths).
 *
 * @param options.exclude skip files whose path relative to `dir` matches (e.g. `/\.png$/` to skip masks)
 * @throws KestrelError E_DATA_FORMAT when the folder is missing or holds no images
 */
export async function listImageFiles(dir: string, options: { exclude?: RegExp } = {}): Promise<string[]> {
  const root = resolve(dir);
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new KestrelError('E_DATA_FORMAT', `image folder ${root} does not exist`, { details: { dir: root } });
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), r);
      else if (e.isFile() && (IMAGE_EXTENSIONS as readonly string[]).includes(extname(e.name).toLowerCase()) && !options.exclude?.test(r)) out.push(join(d, e.name));
    }
  };
  await walk(root, '');
  if (!out.length) throw new KestrelError('E_DATA_FORMAT', `${root} holds no images (${IMAGE_EXTENSIONS.join(', ')})`, { details: { dir: root } });
  return out;
}
