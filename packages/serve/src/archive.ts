import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { KestrelError } from '@kestrel/core';

const EXT: Record<string, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', tiff: 'tif', gif: 'gif', avif: 'avif', heif: 'heif' };

/** File extension for a sharp format name; unknown formats get `.bin`. */
export function extensionFor(format: string): string {
  return EXT[format] ?? 'bin';
}

/**
 * Write `bytes` to `root/rel` atomically: a temporary file in the same folder, fsync, rename, fsync of the
 * folder. Readers never see a half-written file, and a crash leaves at most a stray temporary. `rel` must
 * stay inside `root` (it is built from server-made ids, never from a request).
 */
export function writeFileAtomic(root: string, rel: string, bytes: Uint8Array): string {
  const base = resolve(root);
  const target = resolve(base, rel);
  if (!target.startsWith(base + sep)) throw new KestrelError('E_INTERNAL', `refusing to write outside ${base}: ${rel}`);
  const dir = dirname(target);
  const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
  let fd: number;
  try {
    mkdirSync(dir, { recursive: true });
    fd = openSync(tmp, 'wx', 0o644);
  } catch (e) {
    // e.g. the archive root is a file (ENOTDIR) or read-only: a KestrelError, not an internal error.
    throw new KestrelError('E_IO', `cannot write ${target}: ${(e as Error).message}`, { cause: e });
  }
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw new KestrelError('E_IO', `cannot write ${target}: ${(e as Error).message}`, { cause: e });
  }
  closeSync(fd);
  renameSync(tmp, target);
  fsyncDir(dir);
  return target;
}

/** Refuse an `--archive-ng` path that exists but is not a folder, at start rather than at the first NG. */
export function checkArchiveDir(root: string): void {
  let st;
  try { st = statSync(root); } catch { return; } // created on the first NG image
  if (!st.isDirectory()) throw new KestrelError('E_OPTIONS', `--archive-ng ${root} is not a folder; give a folder (it is created if missing)`);
}

/** fsync a directory so a rename in it is durable (no-op where the platform refuses). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch { /* Windows cannot open directories; rename durability is then up to the OS */ } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
