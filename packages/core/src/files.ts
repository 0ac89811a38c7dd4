/** File helpers every package uses: read a JSON file with a KestrelError that says which file, write atomically. */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { KestrelError, type KestrelErrorCode } from './errors.js';

/** How {@link readJson} reports a file it cannot use. */
export interface ReadJsonOptions {
  /** what the file is, for the message ("config", "results") */
  what: string;
  /** code when the file cannot be read (default E_IO) */
  readCode?: KestrelErrorCode;
  /** code when it is not valid JSON (default E_IO) */
  parseCode?: KestrelErrorCode;
  /** details of the invalid-JSON error instead of `{ path }` (E_COCO_FORMAT errors name a field path there) */
  parseDetails?: Record<string, unknown>;
}

/** Read and parse a JSON file; a missing or unreadable file and invalid JSON are KestrelErrors naming the path. */
export async function readJson(path: string, o: ReadJsonOptions): Promise<unknown> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new KestrelError(o.readCode ?? 'E_IO', `cannot read ${o.what} file ${path}: ${why}`, { cause: e, details: { path } });
  }
  try { return JSON.parse(text) as unknown; } catch (e) {
    throw new KestrelError(o.parseCode ?? 'E_IO', `${o.what} file ${path} is not valid JSON (${(e as Error).message})`, { cause: e, details: o.parseDetails ?? { path } });
  }
}

/** Write a file so that readers see the old content or the whole new content, never a torn file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const p = resolve(path);
  const tmp = `${p}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    // Inside the try: a parent that is a file (EEXIST/ENOTDIR) must be E_IO, not an internal error.
    await mkdir(dirname(p), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, p);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined); // the tmp may be unreachable (ENOTDIR)
    throw new KestrelError('E_IO', `cannot write ${p}: ${(e as Error).message}`, { cause: e });
  }
}
